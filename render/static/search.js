/* Estate Desk offline search.
 *
 * The index is a generated script (assets/search-index.js) that calls EstateSearch.ready(...), so
 * it loads from file:// exactly as over HTTP; pages inject it on the search box's first focus,
 * search.html loads it at once. It holds the sections' text as written, gzip'd; here we inflate it,
 * fold it once (NFKC, lower case, Traditional→Simplified, punctuation dropped — the same rule as
 * handbook/search_fold.py) and scan the folded text with indexOf: CJK runs become bigrams, Latin
 * and digit runs match at word starts (in titles, ids and headings too; an id's number also after its
 * leading zeros). Results are pages with their best sections, ranked by title/heading matches (the
 * page's own title first), then phrase matches, then BM25; a pasted passage is one bag of a few of its
 * words, judged over whole pages. No postings are shipped: at 1,000
 * procedures a cold scan stays well under the 30 ms budget, and the index is smaller than the text.
 */
(function () {
  "use strict";
  var S = (window.EstateSearch = window.EstateSearch || {});
  var DROPPED = 0xffff;
  var DROP_RE = /^[\p{P}\p{Z}\p{S}\p{C}]$/u;
  var K1 = 1.2, B = 0.75, MIN_COVERAGE = 0.5, MAX_PAGES = 50;
  // An SOP's purpose and scope sections mention everything the procedure covers in one line each;
  // they should not outrank the step that actually says it (folded heading words, BM25 weight).
  // The records section only lists the forms by name: a click should land on the step that uses them.
  var SUMMARY_SECTIONS = [["目的", 0.5], ["适用范围", 0.5], ["相关记录", 0.5]];
  // How a question is asked, not what it is about (folded forms: 怎麼辦 reads 怎么办). In "着火了怎么办" the
  // tokens 怎么 and 么办 outvoted 着火, and FAQ headings "…了怎么办？" came first; 多久 and 几天 stay, as
  // the estate's synonyms may say what they ask for (时限). Dropped unless they are all the query says.
  var QUESTION_WORDS = /怎么办|怎么处理|怎么弄|怎么做|该怎么|怎么|如何处理|如何|咋办|请问|吗$|呢$/g;
  // What state a thing is in, not what the thing is: in "电梯坏了" the heading "对讲门铃坏了找谁？" named 坏了
  // and tied with "电梯困人", then won on 坏了 being the rarer word. Said after the thing (at a term's end:
  // 没有问题 and 能不能用 are not split), such a word becomes a term of its own that counts where it is
  // written (BM25, highlights) but names no heading or title and is not needed for coverage, unless it is
  // all the query says.
  var STATE_WORDS = /(坏掉了|坏了|坏掉|不好使了?|不好用了?|出问题了?|出故障了?|失灵了?)$/;
  var SYNONYM_WEIGHT = 0.9;   // a synonym's match ranks just below the same match of the typed words
  // A pasted passage (more than PASSAGE_CHARS folded characters) is one bag of words: PASSAGE_TOKENS of
  // its tokens, spread over it, are scanned, and a section holding PASSAGE_MATCH of them is covered
  // (a passage spans sections; no one section holds most of it)
  var PASSAGE_CHARS = 60, PASSAGE_TOKENS = 32, PASSAGE_MATCH = 8;
  var TABLE = new Uint16Array(65536);   // folded code unit, 0 = not computed yet
  var T2S = {};
  var idx = null, waiting = [], loadStarted = false, cache = new Map();

  /* ---------- folding ---------- */

  function foldCode(u) {
    var f = TABLE[u];
    if (f) return f;
    if (u >= 0xd800 && u <= 0xdfff) return (TABLE[u] = u);  // astral characters are kept whole
    var ch = String.fromCharCode(u), n = ch.normalize("NFKC");
    if (n.length !== 1) n = ch;
    var low = n.toLowerCase();
    if (low.length === 1) n = low;
    n = T2S[n] || n;
    return (TABLE[u] = DROP_RE.test(n) ? DROPPED : n.charCodeAt(0));
  }

  var UTF16 = new TextDecoder("utf-16le", { ignoreBOM: true });   // offsets count a leading BOM too

  /* Fold the whole text once at load: one table look-up a UTF-16 code unit. Only each "\n"'s offset
     is kept: where a section's folded characters sit in the text as written is worked out when a
     snippet needs it (secPos); doing that for every character up front cost a 20 MB array. */
  function foldCodes(codes, lines) {
    var n = codes.length, out = new Uint16Array(n), nl = new Int32Array(lines), j = 0, k = 0;
    for (var i = 0; i < n; i++) {
      var u = codes[i];
      if (u === 10) { if (k < lines) nl[k++] = i; out[j++] = 10; continue; }
      var f = TABLE[u] || foldCode(u);
      if (f !== DROPPED) out[j++] = f;
    }
    return { s: UTF16.decode(out.subarray(0, j)), nl: nl };
  }

  /* Fill POS with the offset of each code unit of CODES [A, B) that folding keeps (foldCodes' rule). */
  function positions(codes, a, b, pos) {
    for (var i = a, j = 0; i < b; i++) {
      var u = codes[i];
      if (u === 10 || (TABLE[u] || foldCode(u)) !== DROPPED) pos[j++] = i;
    }
  }

  /* Offsets, in the text as written, of section N's folded characters and of the "\n" (or
     the text's end) just after it; computed on first use. */
  function secPos(n) {
    var sec = idx.secs[n];
    if (!sec.pos) {
      var len = sec.end - sec.start, pos = new Int32Array(len + 1);
      positions(idx.codes, sec.oStart, sec.oEnd, pos);
      pos[len] = sec.oEnd;
      sec.pos = pos;
    }
    return sec.pos;
  }

  /* Offset, in the text as written, of the folded character at I. */
  function posAt(i) {
    var n = secAt(i);
    return secPos(n)[i - idx.secs[n].start];
  }

  /* The text as written between offsets A and B. */
  function written(a, b) { return UTF16.decode(idx.codes.subarray(a, b)); }

  /* Offset just past the character that starts at A. */
  function charEnd(a) {
    var u = idx.codes[a];
    return a + (u >= 0xd800 && u <= 0xdbff ? 2 : 1);     // an astral character is two code units
  }

  function fold(s) {
    var out = "";
    for (var i = 0; i < s.length; i++) {
      var f = foldCode(s.charCodeAt(i));
      if (f !== DROPPED) out += String.fromCharCode(f);
    }
    return out;
  }
  S.fold = fold;

  function isAlnum(c) { return (c >= 48 && c <= 57) || (c >= 97 && c <= 122); }
  function isDigit(c) { return c >= 48 && c <= 57; }

  /* Class of a folded code unit for the word-start rule: 0 none (dropped, CJK, mark), 1 letter, 2 digit. */
  function wordClass(f) { return f === DROPPED || !isAlnum(f) ? 0 : isDigit(f) ? 2 : 1; }

  /* Whether a Latin or digit term T may match after a character of class PREV: where a word starts. */
  function startsWord(prev, t) { return prev === 0 || (prev === 2) !== isDigit(t.charCodeAt(0)); }

  /* PARTS folded and joined, with the class of the character as written before each folded one
     (a part starts a word): the word-start rule for titles and ids, whose marks folding drops. */
  function foldMarked(parts) {
    var out = "", prev = [];
    parts.forEach(function (s) {
      var cls = 0;
      for (var i = 0; i < s.length; i++) {
        var f = foldCode(s.charCodeAt(i));
        if (f !== DROPPED) { out += String.fromCharCode(f); prev.push(cls); }
        cls = wordClass(f);
      }
    });
    return { s: out, prev: Uint8Array.from(prev) };
  }

  /* Split a folded term into tokens: CJK bigrams (or unigrams), Latin and digit runs whole. */
  function tokenize(term, mode) {
    var out = [], runs = term.match(/[a-z]+|[0-9]+|[^a-z0-9]+/g) || [];
    runs.forEach(function (run) {
      if (isAlnum(run.charCodeAt(0))) { out.push({ t: run, word: true }); return; }
      var i;
      if (mode === "unigram" || mode === "both" || run.length === 1) {
        for (i = 0; i < run.length; i++) out.push({ t: run[i], word: false, uni: run.length > 1 });
      }
      if (mode !== "unigram") {
        for (i = 0; i + 1 < run.length; i++) out.push({ t: run.substr(i, 2), word: false });
      }
    });
    var seen = {};
    return out.filter(function (tok) { return seen[tok.t] ? false : (seen[tok.t] = true); });
  }
  S.tokenize = tokenize;

  /* ---------- loading ---------- */

  /* The index script calls this with its gzip'd data packed 15 bits a code unit (see handbook/search.py);
     inflate it natively, then index it. The data is the JSON head in UTF-8, a NUL at an odd offset, then
     the text in UTF-16LE, read in place as code units: no decoding pass over megabytes of text. */
  S.ready = function (format, packed, size) {
    var t0 = performance.now();
    S.timings = { script: t0 };
    if (format !== "gzip-b15" || typeof packed !== "string" || !(size >= 0)) { loadFailed(); return; }
    var bytes;
    try { bytes = unpack15(packed, 0, size); } catch (e) { loadFailed(); return; }
    gunzip(bytes).then(function (all) {
      var cut = all.indexOf(0), utf8 = new TextDecoder();
      if (cut < 0 || cut % 2 === 0 || (all.length - cut - 1) % 2) { loadFailed(); return; }   // not this layout
      var codes = new Uint16Array(all.buffer, all.byteOffset + cut + 1, (all.length - cut - 1) / 2);
      start(JSON.parse(utf8.decode(all.subarray(0, cut))), BIG_ENDIAN ? swapped(codes) : codes, t0);
    }, loadFailed);
  };

  /* The SIZE bytes handbook/search.py's pack15 wrote into TEXT from AT: each code unit minus 0x4E00 is a
     byte pair less the high byte's top bit; those bits follow, packed the same way; short tails are base64. */
  var B15_OFFSET = 0x4E00, B15_BASE64_MAX = 48;
  function unpack15(text, at, size) {
    var out = new Uint8Array(size), i;
    if (size <= B15_BASE64_MAX) {
      var bin = atob(text.substr(at, 4 * Math.ceil(size / 3)));
      if (bin.length !== size) throw new Error("index cut short");
      for (i = 0; i < size; i++) out[i] = bin.charCodeAt(i);
      return out;
    }
    var pairs = (size + 1) >> 1, top = unpack15(text, at + pairs, (pairs + 7) >> 3);
    for (i = 0; i < pairs; i++) {
      var u = text.charCodeAt(at + i) - B15_OFFSET;
      if (!(u >= 0 && u < 0x8000)) throw new Error("index damaged");
      out[2 * i] = u & 0xff;
      if (2 * i + 1 < size) out[2 * i + 1] = (u >> 8) | (((top[i >> 3] >> (7 - (i & 7))) & 1) << 7);
    }
    return out;
  }
  S.unpack15 = unpack15;   // for the tests: it must undo handbook/search.py's pack15 exactly

  var BIG_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 0;

  /* CODES with each unit's bytes swapped (a Uint16Array reads the platform's byte order). */
  function swapped(codes) {
    for (var i = 0; i < codes.length; i++) codes[i] = ((codes[i] & 0xff) << 8) | (codes[i] >> 8);
    return codes;
  }

  /* The index could not be read (cut short, corrupted): say so where the page says "loading". */
  function loadFailed() {
    S.loadError = true;
    Promise.resolve().then(function () {   // after this script has run: UI is defined by then
      // the search page's status line, and a drop-down still saying "loading"
      document.querySelectorAll(".es-status, .es-loading").forEach(function (el) { el.textContent = UI.loadError; });
    });
  }

  /* Inflate gzip BYTES natively into one buffer of the size its trailer states. Reading the stream
     ourselves takes half the time of Blob.stream() + Response.arrayBuffer(), which copies each
     chunk twice (5.5 MB at 1,000 procedures: 34 ms against 78 ms). */
  function gunzip(bytes) {
    var n = bytes.length, size = (bytes[n - 4] | (bytes[n - 3] << 8) | (bytes[n - 2] << 16) | (bytes[n - 1] << 24)) >>> 0;
    // deflate expands at most 1032-fold: a larger stated size means the file was cut short or damaged
    if (n < 18 || size > 1032 * n) return Promise.reject(new Error("gzip size"));
    var ds = new DecompressionStream("gzip"), writer = ds.writable.getWriter(), reader = ds.readable.getReader();
    var out = new Uint8Array(size), at = 0;
    writer.write(bytes).catch(function () { /* the reader reports it */ });
    writer.close().catch(function () { /* the reader reports it */ });
    function pump() {
      return reader.read().then(function (r) {
        if (r.done) return at === size ? out : Promise.reject(new Error("gzip size"));
        if (at + r.value.length > size) return Promise.reject(new Error("gzip size"));
        out.set(r.value, at);
        at += r.value.length;
        return pump();
      });
    }
    return pump();
  }

  if (window.EstateSearchPending) {     // the index script ran first (async on search.html)
    S.ready.apply(null, window.EstateSearchPending);
    window.EstateSearchPending = null;
  }

  function start(data, codes, t0) {
    S.timings.inflated = performance.now();
    TABLE = new Uint16Array(65536);
    T2S = {};
    for (var i = 0; i + 1 < data.fold.length; i += 2) T2S[data.fold[i]] = data.fold[i + 1];
    var sec = data.sections, F = foldCodes(codes, (sec.length / 3) * 2), nl = F.nl;
    var secs = [], p = 0;
    // each section is two lines of text: its heading, then its body
    for (var k = 0; k < sec.length; k += 3) {
      var hEnd = F.s.indexOf("\n", p), tEnd = F.s.indexOf("\n", hEnd + 1), m = (k / 3) * 2;
      if (tEnd < 0) tEnd = F.s.length;
      // o*: offsets of the heading line, the body line and the body's end in the text as written
      secs.push({ page: sec[k], anchor: sec[k + 1], heading: sec[k + 2], start: p, body: hEnd + 1, end: tEnd,
                  oStart: m ? nl[m - 1] + 1 : 0, oBody: nl[m] + 1, oEnd: tEnd === F.s.length ? codes.length : nl[m + 1],
                  pos: null });
      p = tEnd + 1;
    }
    var pages = data.pages.map(function (r, n) {
      var p = { n: n, url: r[0], title: r[1], kind: r[2], id: r[3], department: r[4], category: r[5],
               audience: r[6], tags: r[7], date: r[8], secs: [] };
      var t = foldMarked([r[1], r[3]]);
      p.ftitle = t.s;
      p.fprev = t.prev;
      return p;
    });
    secs.forEach(function (s, n) { s.n = n; pages[s.page].secs.push(s); });
    var ftitles = pages.map(function (p) { return p.ftitle; }).join("\n");
    var total = secs.reduce(function (a, s) { return a + s.end - s.start; }, 0);
    idx = { data: data, codes: codes, F: F, secs: secs, pages: pages, ftitles: ftitles, avg: total / Math.max(1, secs.length),
            starts: Int32Array.from(secs.map(function (s) { return s.start; })),
            synonyms: data.synonyms.map(function (g) { return g.map(fold).filter(Boolean); }) };
    cache = new Map();
    S.timings.indexed = performance.now();
    S.loadMs = S.timings.indexed - t0;
    S.index = idx;
    var w = waiting;
    waiting = [];
    w.forEach(function (cb) { cb(); });
  }

  S.load = function (root, cb) {
    if (idx) { if (cb) cb(); return; }
    if (cb) waiting.push(cb);
    if (loadStarted) return;
    loadStarted = true;
    if (document.querySelector('script[src$="assets/search-index.js"]')) return;  // search.html loads it itself
    var el = document.createElement("script");
    el.src = root + "assets/search-index.js";
    el.onerror = function () { loadStarted = false; loadFailed(); };   // missing: a later focus tries again
    // a file cut short (a USB copy) fails to parse but still fires load: it never called ready()
    el.onload = function () { if (!S.timings) loadFailed(); };
    document.head.appendChild(el);
  };

  /* ---------- matching ---------- */

  function secAt(pos) {
    var lo = 0, hi = idx.starts.length - 1;
    while (lo < hi) {
      var mid = (lo + hi + 1) >> 1;
      if (idx.starts[mid] <= pos) lo = mid; else hi = mid - 1;
    }
    return lo;
  }

  /* A Latin or digit term T matches only where a word starts in the text as written. */
  function atWordStart(i, t) {
    var o = posAt(i) - 1;
    // an astral character's low half is never a letter or digit
    return o < 0 || startsWord(wordClass(foldCode(idx.codes[o])), t);
  }

  /* Whether the folded term T is in HEADING (a section's folded heading, from folded position AT). */
  function headHas(heading, at, t) {
    if (!isAlnum(t.charCodeAt(0))) return heading.indexOf(t) !== -1;
    for (var i = heading.indexOf(t); i !== -1; i = heading.indexOf(t, i + 1)) if (atWordStart(at + i, t)) return true;
    return false;
  }

  /* Whether PAGE's title or id holds the folded term T: a Latin or digit one where a word starts, a
     number also after leading zeros if it ends the number there ("sop 3" names CS-SOP-003). */
  function titleHas(page, t) {
    var s = page.ftitle, pv = page.fprev, c = t.charCodeAt(0);
    if (!isAlnum(c)) return s.indexOf(t) !== -1;
    for (var i = s.indexOf(t); i !== -1; i = s.indexOf(t, i + 1)) {
      if (startsWord(pv[i], t)) return true;
      if (!isDigit(c)) continue;
      var j = i, end = i + t.length;
      while (pv[j] === 2 && s[j - 1] === "0") j--;
      if (j < i && pv[j] !== 2 && !(end < s.length && pv[end] === 2 && isDigit(s.charCodeAt(end)))) return true;
    }
    return false;
  }

  /* Sections containing TOK: Map(section index → count); cached across keystrokes. */
  function occurrences(tok) {
    var key = (tok.word ? "w:" : "s:") + tok.t, hit = cache.get(key);
    if (hit) return hit;
    var s = idx.F.s, counts = new Map(), i = s.indexOf(tok.t);
    while (i !== -1) {
      if (!tok.word || atWordStart(i, tok.t)) {
        var n = secAt(i);
        counts.set(n, (counts.get(n) || 0) + 1);
      }
      i = s.indexOf(tok.t, i + 1);
    }
    if (cache.size > 500) cache.clear();
    cache.set(key, counts);
    return counts;
  }

  /* Turn the query into groups of alternatives (synonyms), each alternative a folded term. */
  /* Each alternative remembers the synonym it brought in (`need`): it only counts where that word is. */
  function parseQuery(q) {
    var terms = q.split(/\s+/).map(fold).filter(Boolean);
    var asked = terms.map(function (t) { return t.replace(QUESTION_WORDS, " "); }).join(" ").split(" ").filter(Boolean);
    // state words split off as terms marked "\n"; weak unless nothing else is asked
    var parts = (asked.length ? asked : terms).map(function (t) { return t.replace(STATE_WORDS, " \n$1"); })
      .join(" ").split(" ").filter(Boolean);
    var strong = parts.some(function (t) { return t.charAt(0) !== "\n"; });
    return parts.map(function (part) {
      var term = part.replace("\n", ""), alts = [{ text: term, need: "" }], seen = [term];
      alts.weak = strong && part !== term;
      idx.synonyms.forEach(function (group) {
        group.forEach(function (word) {
          if (term.indexOf(word) === -1) return;
          group.forEach(function (other) {
            var alt = term.split(word).join(other);
            if (seen.indexOf(alt) === -1) { seen.push(alt); alts.push({ text: alt, need: other }); }
          });
        });
      });
      return alts;
    });
  }

  function idf(df) {
    var N = idx.secs.length;
    return Math.log(1 + (N - df + 0.5) / (df + 0.5));
  }

  function passes(page, f) {
    if (!f) return true;
    if (f.department && page.department !== f.department) return false;
    if (f.category && page.category !== f.category) return false;
    if (f.audience && page.audience !== f.audience) return false;
    if (f.kind && page.kind !== f.kind) return false;
    if (f.tag && page.tags.indexOf(f.tag) === -1) return false;
    return true;
  }


  /* Pages: title or heading matches first, the page's own title before a section heading, then
     phrase matches, then BM25. */
  function compareKeys(a, b) {
    return b.title - a.title || b.own - a.own || b.spread - a.spread || b.phrase - a.phrase || b.bm - a.bm || a.n - b.n;
  }

  /* Sections of one page: title and heading together (a synonym may join them), heading alone, phrase, BM25. */
  function compareInPage(a, b) {
    var emptyA = a.sec.end === a.sec.body, emptyB = b.sec.end === b.sec.body;   // a bare parent heading
    if (emptyA !== emptyB) return emptyA ? 1 : -1;
    return b.title - a.title || b.head - a.head || b.phrase - a.phrase || b.bm - a.bm || a.n - b.n;
  }

  /* At most N of TOKS, evenly spread over them. */
  function spread(toks, n) {
    if (toks.length <= n) return toks;
    var out = [];
    for (var i = 0; i < n; i++) out.push(toks[Math.floor((i * toks.length) / n)]);
    return out;
  }

  /* Score every candidate section; return [{page, sections:[scored...]}], best first. */
  function rank(groups, opts) {
    var mode = opts.mode || "bigram", loose = !!opts.passage;
    var plan = groups.map(function (alts) {
      var planned = alts.map(function (x) {
        var alt = x.text, toks = spread(tokenize(alt, mode), loose ? PASSAGE_TOKENS : Infinity), phrase = occurrences({ t: alt, word: isAlnum(alt.charCodeAt(0)) });
        return { alt: alt, toks: toks, occ: toks.map(occurrences), phrase: phrase, need: x.need,
                 needOcc: x.need ? occurrences({ t: x.need, word: isAlnum(x.need.charCodeAt(0)) }) : null };
      });
      planned.weak = !!alts.weak;
      return planned;
    });
    var strong = plan.filter(function (alts) { return !alts.weak; }).length;   // the groups coverage counts
    var cand = new Set();
    plan.forEach(function (alts) {
      alts.forEach(function (a) { a.occ.forEach(function (m) { m.forEach(function (_, n) { cand.add(n); }); }); });
    });
    idx.pages.forEach(function (p) {   // a page named by the query is a result even if no section says it
      if (plan.some(function (alts) {
        return alts.some(function (a) {   // "sop3": CS-SOP-003 names each token, not the term
          return titleHas(p, a.alt) || (a.toks.length && a.toks.every(function (t) { return titleHas(p, t.t); }));
        });
      })) {
        cand.add(p.secs[0].n);
      }
    });
    var byPage = new Map();
    cand.forEach(function (n) {
      var sec = idx.secs[n], page = idx.pages[sec.page];
      if (!passes(page, opts.filters)) return;
      var heading = idx.F.s.slice(sec.start, sec.body), len = sec.end - sec.start, weight = 1;
      SUMMARY_SECTIONS.forEach(function (r) { if (heading.indexOf(r[0]) !== -1) weight = r[1]; });
      var key = { n: n, sec: sec, page: page, title: 0, own: 0, head: 0, phrase: 0, bm: 0, cov: 0, spread: 0, hit: [] };
      plan.forEach(function (alts) {
        var best = { named: 0, own: 0, head: 0, phrase: 0, bm: 0, cov: 0 };
        alts.forEach(function (a, ai) {
          var trust = ai ? SYNONYM_WEIGHT : 1;     // what the user typed beats what a synonym stands for
          // "钥匙不见了" must not stand in for "钥匙" where no 不见了 is written
          if (a.need && !a.needOcc.has(n) && !titleHas(page, a.need)) return;
          var bm = 0, matched = 0, named = 0, titled = 0, headed = 0, known = 0, missingWord = false, absent = false;
          a.occ.forEach(function (m, t) {
            // a CJK token found nowhere ("了", "能不") cannot tell sections apart; a missing number or
            // Latin word can: "1503" must not find "1502" through the "座" beside it. A token only titles
            // hold ("匙管" of 钥匙管理) is known: it tells the pages it names from those it does not
            if (!m.size && !a.toks[t].word && idx.ftitles.indexOf(a.toks[t].t) === -1) return;
            known++;
            var tok = a.toks[t].t;
            var inHead = headHas(heading, sec.start, tok);
            if (inHead) headed++;
            var inTitle = titleHas(page, tok);
            if (inTitle) titled++;
            if (inHead || inTitle) named++;
            var tf = m.get(n);
            if (!tf) {
              missingWord = missingWord || (a.toks[t].word && !loose);
              absent = absent || (a.toks[t].word && !loose && !inHead && !inTitle);
              return;
            }
            matched++;
            if (loose) key.hit.push(tok);
            bm += (a.toks[t].uni ? 0.3 : 1) * idf(m.size) * tf * (K1 + 1) / (tf + K1 * (1 - B + B * len / idx.avg));
          });
          // numbers and Latin words (rooms, ticket numbers) must all be there; CJK bigrams may be partial
          var cov = loose ? Math.min(1, matched / Math.min(known || 1, PASSAGE_MATCH))
            : known && !missingWord ? matched / known : 0;
          // "UTF-8" is not about N-2026-008: a number or Latin word neither here nor in its names rules it out
          if (absent) return;
          var inHeading = headHas(heading, sec.start, a.alt), inTitle = titleHas(page, a.alt);
          // share of the term's tokens that the title or heading names (1 when it names the whole term)
          // a passage's few words in a title or heading say little: only the whole of it counts there
          var tier = trust * (inHeading || inTitle ? 1 : known && !loose ? named / known : 0);
          if (tier > best.named) best.named = tier;
          tier = trust * (inTitle || (known && !loose && titled === known) ? 1 : 0);     // the page title names it all
          if (tier > best.own) best.own = tier;
          tier = trust * (inHeading ? 1 : known && !loose ? headed / known : 0);
          if (tier > best.head) best.head = tier;
          if (cov > best.cov) best.cov = cov;
          if (trust * bm * cov * cov > best.bm) best.bm = trust * bm * cov * cov;
          if (a.phrase.has(n) && trust > best.phrase) best.phrase = trust;
        });
        var names = alts.weak ? 0 : 1;   // a state word names no heading or title
        key.title += best.named * names;
        key.own += best.own * names;
        key.head += best.head * names;
        key.phrase += best.phrase;
        key.bm += best.bm * weight;
        if (!alts.weak) key.cov += best.cov / strong;
      });
      // enough of the query must be in the section, or in its page title and heading
      // (a passage's coverage is judged over the whole page, below)
      if (key.cov < (loose ? Number.MIN_VALUE : MIN_COVERAGE) && key.title / strong < MIN_COVERAGE) return;
      var list = byPage.get(page.n);
      if (!list) byPage.set(page.n, (list = []));
      list.push(key);
    });
    var results = [], passageNeed = loose ? Math.min(plan[0][0].toks.length, PASSAGE_MATCH) * MIN_COVERAGE : 0;
    byPage.forEach(function (list) {
      var spread = 0;
      if (loose) {   // a passage: how many of its words the page holds, over all its sections
        var words = new Set();
        list.forEach(function (k) { k.hit.forEach(function (t) { words.add(t); }); });
        if ((spread = words.size) < passageNeed) return;
      }
      // the lead section stands in for a page only its title matched; drop it beside real matches
      var matched = list.filter(function (k) { return k.cov > 0; });
      if (matched.length) list = matched;
      list.sort(compareInPage);
      var key = Object.assign({}, list[0], { title: Math.max.apply(null, list.map(function (k) { return k.title; })),
                                             own: Math.max.apply(null, list.map(function (k) { return k.own; })),
                                             spread: spread });
      results.push({ page: list[0].page, key: key, sections: list, plan: plan });
    });
    results.sort(function (a, b) { return compareKeys(a.key, b.key); });
    return results;
  }

  /* ---------- snippets and highlights ---------- */

  function escapeHtml(s) {
    return s.replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  /* Ranges [from, to) in folded positions of the plan's phrases and tokens inside [lo, hi). */
  function matchRanges(plan, lo, hi) {
    var out = [], s = idx.F.s.slice(lo, hi);   // search the section only, not up to the next match
    var n = secAt(lo), page = idx.pages[idx.secs[n].page];
    plan.forEach(function (alts) {
      alts.forEach(function (a) {
        // as rank() scores it: no 东西 of 修东西 marked where 修东西 is not written
        if (a.need && !a.needOcc.has(n) && !titleHas(page, a.need)) return;
        var needles = [a.alt].concat(a.toks.filter(function (t) { return !t.uni; }).map(function (t) { return t.t; }));
        needles.forEach(function (nd, k) {
          var word = isAlnum(nd.charCodeAt(0));    // G<mark>B</mark>K is no match for "B2"
          for (var i = s.indexOf(nd); i !== -1; i = s.indexOf(nd, i + 1)) {
            if (word && !atWordStart(lo + i, nd)) continue;
            out.push([lo + i, lo + i + nd.length, k === 0 ? 2 : 1]);
          }
        });
      });
    });
    out.sort(function (x, y) { return x[0] - y[0] || y[1] - x[1]; });
    var merged = [];
    out.forEach(function (r) {
      var last = merged[merged.length - 1];
      if (last && (r[0] < last[1] || (r[0] === last[1] && joined(last[1])))) {
        last[1] = Math.max(last[1], r[1]); last[2] = Math.max(last[2], r[2]);
      } else merged.push(r.slice());
    });
    return merged;
  }

  /* Are folded characters AT-1 and AT side by side as written? Folding drops punctuation and spaces, so
     matches that touch in folded text may not: 回访。 回访时 is two marks, not one over the 。 */
  function joined(at) {
    return charEnd(posAt(at - 1)) === posAt(at);
  }

  /* Byte range, in the text as written, of folded characters [fFrom, fTo). */
  function original(fFrom, fTo) {
    return [posAt(fFrom), charEnd(posAt(fTo - 1))];
  }

  /* Highlighted HTML of ORIGINAL TEXT [from, to) with folded match RANGES marked. */
  function markHtml(from, to, ranges) {
    var html = "", at = from;
    ranges.forEach(function (r) {
      var o = original(r[0], r[1]);
      if (o[1] <= from || o[0] >= to) return;
      var a = Math.max(o[0], at), b = Math.min(o[1], to);
      if (b <= a) return;
      html += escapeHtml(written(at, a)) + "<mark>" + escapeHtml(written(a, b)) + "</mark>";
      at = b;
    });
    return html + escapeHtml(written(at, to));
  }

  /* About WIDTH characters of the section's body around its first match, matches marked. */
  function snippet(sec, plan, width) {
    var ranges = matchRanges(plan, sec.body, sec.end);
    var first = ranges.filter(function (r) { return r[2] === 2; })[0] || ranges[0];
    var centre = first ? first[0] : sec.body;                  // folded positions from here on
    var from = Math.max(sec.body, centre - Math.floor(width / 3)), to = Math.min(sec.end, from + width);
    from = Math.max(sec.body, Math.min(from, to - width));
    var a = from === sec.body ? sec.oBody : posAt(from), b = to === sec.end ? sec.oEnd : posAt(to);
    return (a > sec.oBody ? "…" : "") + markHtml(a, b, ranges) + (b < sec.oEnd ? "…" : "");
  }

  /* The matched words as written in the section, to highlight on the opened page. */
  function hitsAsWritten(sec, plan) {
    var seen = [], ranges = matchRanges(plan, sec.start, sec.end);
    ranges.forEach(function (r) {
      var o = original(r[0], r[1]), w = written(o[0], o[1]);
      if (seen.indexOf(w) === -1 && seen.length < 8) seen.push(w);
    });
    return seen;
  }

  function sectionUrl(page, sec, hits) {
    var q = hits && hits.length ? "?h=" + encodeURIComponent(hits.join("|")) : "";
    return page.url + q + (sec.anchor ? "#" + encodeURIComponent(sec.anchor) : "");
  }

  function pageInfo(p) {
    return { url: p.url, title: p.title, kind: p.kind, id: p.id, department: p.department,
             category: p.category, audience: p.audience, tags: p.tags, date: p.date };
  }

  /* Forget cached token scans (benchmarks measure cold queries). */
  S.clearCache = function () { cache = new Map(); };

  /* Search: return {query, results:[{page, sections:[{heading, anchor, url, snippet, hits}]}], suggestions, recent}. */
  S.search = function (q, opts) {
    opts = opts || {};
    var groups = parseQuery(q || "");
    if (!groups.length) {
      // only marks ("？？？", ".*"): nothing to look for, so nothing found, not the recent pages unlabelled
      if ((q || "").trim()) return { query: q, recent: false, results: [], total: 0, suggestions: [] };
      var rec = recent(opts);
      return { query: q || "", recent: true, results: rec, total: rec.length, suggestions: [] };
    }
    var chars = groups.reduce(function (n, alts) { return n + alts[0].text.length; }, 0);
    if (chars > PASSAGE_CHARS) {       // a pasted passage: its words together, as written, no synonyms
      groups = [[{ text: groups.map(function (alts) { return alts[0].text; }).join(""), need: "" }]];
      opts = Object.assign({}, opts, { passage: true });
    }
    var all = rank(groups, opts), ranked = all.slice(0, opts.limit || MAX_PAGES), perPage = opts.sections || 3;
    var results = ranked.map(function (r) {
      return {
        page: pageInfo(r.page),
        sections: r.sections.slice(0, perPage).map(function (k) {
          var hits = hitsAsWritten(k.sec, r.plan);
          var hEnd = k.sec.body - 1;
          return { heading: k.sec.heading, anchor: k.sec.anchor, url: sectionUrl(r.page, k.sec, hits),
                   headingHtml: markHtml(k.sec.oStart, k.sec.oBody - 1, matchRanges(r.plan, k.sec.start, hEnd)),
                   snippet: snippet(k.sec, r.plan, opts.width || 90), hits: hits,
                   score: [k.title, k.phrase, Math.round(k.bm * 1000) / 1000] };
        }),
      };
    });
    return { query: q, recent: false, results: results, total: all.length,
             suggestions: results.length ? [] : suggest(groups) };
  };

  function recent(opts) {
    return idx.pages.filter(function (p) { return passes(p, opts.filters); })
      .sort(function (a, b) { return a.date < b.date ? 1 : a.date > b.date ? -1 : a.n - b.n; })
      .slice(0, idx.data.recent)
      .map(function (p) {
        var sec = p.secs[0], cut = Math.min(sec.end, sec.body + 60);
        return { page: pageInfo(p), sections: [{ heading: sec.heading, anchor: sec.anchor, url: p.url, hits: [],
                 snippet: escapeHtml(written(sec.oBody, cut === sec.end ? sec.oEnd : posAt(cut))) }] };
      });
  }

  /* ---------- suggestions ---------- */

  var vocab = null;
  function contains(f) {
    return idx.F.s.indexOf(f) !== -1 || idx.pages.some(function (p) { return p.ftitle.indexOf(f) !== -1; });
  }

  function vocabulary() {
    if (vocab) return vocab;
    var words = {}, add = function (w) {
      w = (w || "").replace(/^[\s\d.、一二三四五六七八九十()（）]+/, "").trim();
      var f = fold(w);
      // only words the handbook contains: a suggestion must lead somewhere
      if (f.length >= 2 && f.length <= 12 && !words[f] && contains(f)) words[f] = w;
    };
    idx.pages.forEach(function (p) { add(p.title); p.tags.forEach(add); });
    idx.secs.forEach(function (s) { add(s.heading); });
    idx.data.synonyms.forEach(function (g) { g.forEach(add); });
    vocab = Object.keys(words).map(function (f) { return { f: f, w: words[f], grams: grams(f) }; });
    return vocab;
  }

  function grams(f) {
    var g = {};
    for (var i = 0; i < f.length; i++) { g[f[i]] = 1; if (i + 1 < f.length) g[f.substr(i, 2)] = 2; }
    return g;
  }

  /* The closest vocabulary words to the query: Dice overlap of characters and bigrams. */
  function suggest(groups) {
    var qf = groups.map(function (g) { return g[0].text; }).join(""), qg = grams(qf);
    var qn = Object.keys(qg).length;
    return vocabulary().map(function (v) {
      var common = 0, strong = false, keys = Object.keys(v.grams);
      keys.forEach(function (k) {
        if (!qg[k]) return;
        common += v.grams[k];
        strong = strong || k.length > 1 || !isAlnum(k.charCodeAt(0));   // one shared Latin letter is chance
      });
      return { w: v.w, s: strong ? (2 * common) / (qn + keys.length) : 0 };
    }).filter(function (x) { return x.s > 0; })
      .sort(function (a, b) { return b.s - a.s || a.w.length - b.w.length; })
      .slice(0, 5).map(function (x) { return x.w; });
  }

  /* ---------- UI ---------- */

  var UI = {
    pages: "个页面", none: "没有找到与“{q}”相关的内容。", empty: "这里还没有可搜索的页面。",
    didYouMean: "您是不是要找：", recent: "最近更新", all: "查看全部结果", more: "显示全部 {n} 个页面",
    loading: "正在载入索引…", loadError: "搜索索引载入失败：assets/search-index.js 缺失或已损坏，请重新构建，或重新复制整个 site 文件夹。",
    label: "搜索手册", results: "搜索结果",
    any: "全部", department: "部门", category: "类别", audience: "适用对象", tag: "标签",
    placeholder: { staff: "搜索规程、知识库（按 / 键）", public: "搜索公告、办事指南（按 / 键）" },
    kinds: { procedure: "规程", faq: "知识库", notice: "公告" },
    audiences: { staff: "员工", resident: "住户", both: "员工和住户" },
  };
  if (window.EstateSearchUI) Object.assign(UI, window.EstateSearchUI);   // another language's strings
  S.UI = UI;

  /* The tree's root as a relative URL ("", "../"): an element's data-root, else where this script was
     loaded from (pages load it as ROOT + "assets/site.js"), so pages need not repeat it. */
  var OWN_SRC = (document.currentScript && document.currentScript.getAttribute("src")) || "";
  var SCRIPT_ROOT = (OWN_SRC.match(/^(.*?)assets\/[^\/?#]*(?:[?#].*)?$/) || ["", ""])[1];
  function rootOf(el) { return (el && el.getAttribute("data-root")) || SCRIPT_ROOT; }

  function resultHtml(r, root, sections) {
    var p = r.page, kind = UI.kinds[p.kind] || p.kind;
    var head = '<span class="es-kind">' + escapeHtml(kind) + "</span>" +
      (p.id ? '<span class="es-id">' + escapeHtml(p.id) + "</span>" : "") +
      '<span class="es-title">' + escapeHtml(p.title) + "</span>";
    return r.sections.slice(0, sections).map(function (s, i) {
      return '<a class="es-hit' + (i ? " es-sub" : "") + '" role="option" href="' + escapeHtml(root + s.url) + '">' +
        (i ? "" : '<span class="es-head">' + head + "</span>") +
        (s.heading ? '<span class="es-section">' + (s.headingHtml || escapeHtml(s.heading)) + "</span>" : "") +
        '<span class="es-snippet">' + s.snippet + "</span>" +
        (i === 0 && p.date && r.sections.length && !s.hits.length ? '<span class="es-date">' + escapeHtml(p.date) + "</span>" : "") +
        "</a>";
    }).join("");
  }

  function suggestionsHtml(out, href) {
    var html = '<p class="es-none">' + escapeHtml(UI.none.replace("{q}", out.query)) + "</p>";
    if (out.suggestions.length) {
      html += '<p class="es-suggest">' + UI.didYouMean + out.suggestions.map(function (w) {
        return '<a class="es-suggestion" href="' + escapeHtml(href(w)) + '">' + escapeHtml(w) + "</a>";
      }).join("、") + "</p>";
    }
    return html;
  }

  function markFirstQuery() {
    if (S.firstQueryAt === undefined) S.firstQueryAt = performance.now();
  }

  /* The drop-down under a header search box. */
  function initBox(form) {
    var input = form.querySelector("input[name=q]"), list = form.querySelector(".es-dropdown");
    var root = rootOf(form), active = -1;
    var searchUrl = function (q) { return root + "search.html?q=" + encodeURIComponent(q); };
    function items() { return list.querySelectorAll("a.es-hit"); }
    function setActive(i) {
      var all = items();
      if (!all.length) return;
      active = (i + all.length) % all.length;
      all.forEach(function (a, k) { a.classList.toggle("es-active", k === active); a.setAttribute("aria-selected", k === active); });
      all[active].scrollIntoView({ block: "nearest" });
      input.setAttribute("aria-activedescendant", all[active].id);   // what a screen reader announces
    }
    function unselect() { active = -1; input.removeAttribute("aria-activedescendant"); }
    function close() { list.hidden = true; input.setAttribute("aria-expanded", "false"); unselect(); }
    function render() {
      var q = input.value;
      if (!q.trim()) { close(); return; }
      if (!idx) { list.innerHTML = '<p class="es-none es-loading">' + (S.loadError ? UI.loadError : UI.loading) + "</p>"; list.hidden = false; return; }
      var out = S.search(q, { limit: 8, sections: 1, width: 70 });
      list.innerHTML = out.results.length
        ? out.results.map(function (r) { return resultHtml(r, root, 1); }).join("") +
          '<a class="es-all" href="' + escapeHtml(searchUrl(q)) + '">' + UI.all + "</a>"
        : suggestionsHtml(out, searchUrl);
      items().forEach(function (a, k) { a.id = (list.id || "es-dropdown") + "-" + k; });
      list.hidden = false;
      input.setAttribute("aria-expanded", "true");
      unselect();
      markFirstQuery();
    }
    input.addEventListener("focus", function () { S.load(root, render); });
    // a pointer heading for the box: start loading before the click lands
    form.addEventListener("pointerenter", function () { S.load(root); });
    // an input method's pinyin ("bao'xiu") is not the query: search what it commits
    var composing = false;
    input.addEventListener("compositionstart", function () { composing = true; });
    input.addEventListener("compositionend", function () { composing = false; S.load(root, render); });
    input.addEventListener("input", function (e) { if (!composing && !e.isComposing) { S.load(root, render); render(); } });
    input.addEventListener("keydown", function (e) {
      if (e.isComposing || e.keyCode === 229) return;     // the input method's own keys (choosing a word)
      if (list.hidden) {    // no result is chosen out of sight: ↓ brings the list back, Enter submits the form
        if (e.key === "ArrowDown" && input.value.trim()) { e.preventDefault(); S.load(root, render); }
        return;
      }
      if (e.key === "ArrowDown") { e.preventDefault(); setActive(active + 1); }
      else if (e.key === "ArrowUp") { e.preventDefault(); setActive(active - 1); }
      else if (e.key === "Escape") { e.preventDefault(); close(); }   // a second Escape clears the box
      else if (e.key === "Enter" && active >= 0) { e.preventDefault(); window.location.href = items()[active].href; }
    });
    document.addEventListener("click", function (e) { if (!form.contains(e.target)) close(); });
  }

  function params() {
    var out = {};
    (window.location.search || "").replace(/^\?/, "").split("&").forEach(function (kv) {
      if (!kv) return;
      var i = kv.indexOf("="), k = i < 0 ? kv : kv.slice(0, i), v = i < 0 ? "" : kv.slice(i + 1);
      try { out[decodeURIComponent(k)] = decodeURIComponent(v.replace(/\+/g, " ")); } catch (err) { /* bad escape: ignore */ }
    });
    return out;
  }

  var FILTERS = ["department", "category", "audience", "tag"];
  var FIRST_PAGE = 20;    // results rendered at once on the search page; the rest on request

  /* The search page: search.html?q=…&department=…, shareable. */
  function initPage(box) {
    var root = rootOf(box), input = box.querySelector("input[name=q]"), out = box.querySelector(".es-page-results");
    var status = box.querySelector(".es-status"), p = params(), selects = {};
    input.value = p.q || "";
    FILTERS.forEach(function (name) { selects[name] = box.querySelector("select[name=" + name + "]"); });
    function fillFilters() {
      var values = { department: {}, category: {}, audience: {}, tag: {} };
      idx.pages.forEach(function (pg) {
        ["department", "category", "audience"].forEach(function (f) { if (pg[f]) values[f][pg[f]] = 1; });
        pg.tags.forEach(function (t) { values.tag[t] = 1; });
      });
      FILTERS.forEach(function (f) {
        var sel = selects[f];
        if (!sel) return;
        sel.innerHTML = '<option value="">' + UI.any + "</option>" + Object.keys(values[f]).sort().map(function (v) {
          var label = f === "audience" ? UI.audiences[v] || v : v;
          return '<option value="' + escapeHtml(v) + '">' + escapeHtml(label) + "</option>";
        }).join("");
        sel.value = p[f] || "";
      });
    }
    function state() {
      var f = {};
      FILTERS.forEach(function (n) { if (selects[n] && selects[n].value) f[n] = selects[n].value; });
      return f;
    }
    function pageUrl(q, f) {
      var parts = ["q=" + encodeURIComponent(q)];
      FILTERS.forEach(function (n) { if (f[n]) parts.push(n + "=" + encodeURIComponent(f[n])); });
      return "search.html?" + parts.join("&");
    }
    function render(limit) {
      var q = input.value, f = state(), res = S.search(q, { filters: f, sections: 3, limit: limit || FIRST_PAGE });
      try { history.replaceState(null, "", pageUrl(q, f)); } catch (err) { /* file:// may refuse; the form still works */ }
      if (res.recent) status.textContent = res.results.length ? UI.recent : "";
      else status.textContent = res.total ? res.total + " " + UI.pages : "";
      out.innerHTML = res.results.length
        ? res.results.map(function (r) { return '<li class="es-result">' + resultHtml(r, root, 3) + "</li>"; }).join("") +
          (res.total > res.results.length ? '<li><button type="button" class="es-more">' +
            UI.more.replace("{n}", res.total) + "</button></li>" : "")
        : res.recent ? '<p class="es-none">' + escapeHtml(UI.empty) + "</p>"    // a tree (or filter) with no pages
        : suggestionsHtml(res, function (w) { return pageUrl(w, f); });
      var more = out.querySelector(".es-more");
      if (more) more.addEventListener("click", function () { render(res.total); });
      markFirstQuery();
    }
    status.textContent = UI.loading;
    S.load(root, function () { fillFilters(); render(); });
    // the index script has run by "load" (it may still be inflating); if it never ran, it is missing
    window.addEventListener("load", function () { if (!idx && !S.timings) loadFailed(); });
    var composing = false;     // as in the drop-down: search what the input method commits, not its pinyin
    input.addEventListener("compositionstart", function () { composing = true; });
    input.addEventListener("compositionend", function () { composing = false; if (idx) render(); });
    input.addEventListener("input", function (e) { if (idx && !composing && !e.isComposing) render(); });
    FILTERS.forEach(function (n) { if (selects[n]) selects[n].addEventListener("change", function () { if (idx) render(); }); });
    box.querySelector("form").addEventListener("submit", function (e) { e.preventDefault(); if (idx) render(); });
  }

  /* On an opened page: mark the words the search matched (?h=a|b), from file:// as well. */
  function highlightPage() {
    var h = params().h;
    if (!h) return;
    var words = h.split("|").filter(function (w) { return w.trim(); });
    var scope = document.querySelector("main") || document.body;
    if (!words.length || !scope) return;
    var walker = document.createTreeWalker(scope, NodeFilter.SHOW_TEXT, {
      acceptNode: function (node) {
        return node.parentNode.closest("script,style,mark,form,textarea") ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT;
      },
    });
    var nodes = [];
    while (walker.nextNode()) nodes.push(walker.currentNode);
    var count = 0;
    nodes.forEach(function (node) {
      var text = node.nodeValue, ranges = [];
      words.forEach(function (w) {
        for (var i = text.indexOf(w); i !== -1; i = text.indexOf(w, i + w.length)) ranges.push([i, i + w.length]);
      });
      if (!ranges.length) return;
      ranges.sort(function (a, b) { return a[0] - b[0] || b[1] - a[1]; });
      var frag = document.createDocumentFragment(), at = 0;
      ranges.forEach(function (r) {
        if (r[0] < at) return;
        frag.appendChild(document.createTextNode(text.slice(at, r[0])));
        var m = document.createElement("mark");
        m.className = "es-mark";
        m.textContent = text.slice(r[0], r[1]);
        frag.appendChild(m);
        at = r[1];
        count++;
      });
      frag.appendChild(document.createTextNode(text.slice(at)));
      node.parentNode.replaceChild(frag, node);
    });
    S.highlighted = count;
  }

  /* The header box is made here, not shipped in every page: search needs this script anyway, and the
     form's markup was ~5% of a thousand-page handbook. Its placeholder is the tree's, from UI. */
  function placeholder() {
    return UI.placeholder[document.body.classList.contains("tree-public") ? "public" : "staff"] || "";
  }

  function makeBox(slot) {
    var root = rootOf(slot);
    slot.innerHTML =
      '<form class="es-searchbox" role="search" method="get" action="' + escapeHtml(root + "search.html") + '">' +
      '<label class="es-visually-hidden" for="es-q">' + escapeHtml(UI.label) + "</label>" +
      '<input id="es-q" type="search" name="q" autocomplete="off" role="combobox" aria-autocomplete="list"' +
      ' aria-controls="es-dropdown" aria-expanded="false" placeholder="' +
      escapeHtml(slot.getAttribute("data-placeholder") || placeholder()) + '">' +
      '<div id="es-dropdown" class="es-dropdown" role="listbox" aria-label="' + escapeHtml(UI.results) +
      '" hidden></div></form>';
    var form = slot.firstChild;
    form.setAttribute("data-root", root);
    return form;
  }

  function init() {
    var page = document.getElementById("es-page");
    document.querySelectorAll("[data-search-slot]").forEach(function (slot) { initBox(makeBox(slot)); });
    document.querySelectorAll("form.es-searchbox").forEach(function (form) {
      if (!form.parentNode.hasAttribute("data-search-slot")) initBox(form);
    });
    if (page) initPage(page);
    highlightPage();
    document.addEventListener("keydown", function (e) {
      if (e.key !== "/" || e.ctrlKey || e.metaKey || e.altKey) return;
      var t = e.target, tag = t && t.tagName;
      if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (t && t.isContentEditable)) return;
      var box = (page && page.querySelector("input[name=q]")) || document.querySelector("form.es-searchbox input[name=q]");
      if (box) { e.preventDefault(); box.focus(); box.select(); }
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
