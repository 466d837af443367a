"""Parse step for the whole estate: every source file, in parallel, reusing cached results.

Converting a file is handbook/parse.py's work, done where parallel.map_parse sends it; this module does not
import it, nor with it YAML and Python-Markdown, which a one-off rebuild then imports only in the process that
converts its few changed files.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field, replace
from importlib.util import find_spec
from pathlib import Path

from estate.config import EstateConfig
from estate.contract import SCHEMA_DIR
from handbook import parallel
from handbook.cache import BuildCache
from handbook.discover import reread
from handbook.models import BuildProblem, Intro, Notice, Procedure, SourceFile, Unparsed
from render.i18n import DEFAULT, catalogue_files

log = logging.getLogger(__name__)


def policy_inputs(policy_path: Path) -> list[Path]:
    """The files the policy views are made from: a change to any of them means every page is parsed again.
    Found without importing the views, which import the policy schema (~15 ms)."""
    views = [Path(find_spec(name).origin) for name in ("render.policy_views", "estate.lifecycle")]  # type: ignore
    return [policy_path, *views, *sorted(SCHEMA_DIR.glob("*.json"))]


@dataclass
class Expander:
    """Expands `[[policy:NAME]]` lines from the processor's policy file (one source of truth).

    The policy is read when a body names one (or `check()` asks): its schema, views and TOML take ~15 ms to
    load, which a one-off rebuild of files without placeholders does not spend.
    """

    policy_path: Path | None            # None: the estate has no policy file (every placeholder is unknown)
    departments: dict[str, str]         # id -> name, as the policy tables show them
    digest: str
    language: str = DEFAULT             # estate.language: the tables' captions, headers and units
    _loaded: tuple | None = field(default=None, repr=False)  # (policy, policy_views module)

    @classmethod
    def load(cls, config: EstateConfig) -> Expander:
        policy_path = config.path(config.processor.policy_file)
        if not policy_path.exists():
            return cls(None, {}, "none")
        language = config.estate.language
        # the tables' words come from the catalogues: editing one must re-parse the pages that show them
        # (a change of estate.language itself changes estate.toml, which the parse stamp holds already)
        inputs = [*policy_inputs(policy_path), *catalogue_files(language)]
        digest = hashlib.sha256(b"".join(p.read_bytes() for p in inputs)).hexdigest()
        return cls(policy_path, {d.id: d.name for d in config.departments}, digest, language)

    def check(self) -> None:
        """Read the policy now: a broken policy file fails the build (ConfigError) even if no body uses it."""
        if self.policy_path is not None:
            self._policy()

    def _policy(self) -> tuple:
        """(policy, policy_views module), read on first use; only called with a policy file."""
        if self._loaded is None:
            from estate.policy import load_policy
            from render import policy_views

            self._loaded = (load_policy(self.policy_path), policy_views)
        return self._loaded

    @property
    def names(self) -> frozenset[str]:
        """The placeholder names a body may use."""
        return frozenset(self._policy()[1].PLACEHOLDERS) if self.policy_path is not None else frozenset()

    def expand(self, text: str) -> str:
        if self.policy_path is None or "[[policy:" not in text:  # nothing to expand: the policy stays unread
            return text
        policy, views = self._policy()
        return views.expand_placeholders(text, policy, self.departments, self.language)


@dataclass
class Parsed:
    """What the parse step hands to the index step."""

    procedures: list[Procedure] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    intro: Intro | None = None                  # procedures/index.md
    problems: list[BuildProblem] = field(default_factory=list)
    unparsed: set[str] = field(default_factory=set)   # procedure files that failed: links to them are not re-reported
    failed: list[Unparsed] = field(default_factory=list)  # failed files' bodies: their links and files are checked
    fresh: int = 0                              # how many files were parsed afresh (not from the cache)


def parse_sources(sources: list[SourceFile], config: EstateConfig, expander: Expander, cache: BuildCache,
                  workers: int, one_off: bool = False) -> Parsed:
    """Parse every source, reusing the cache's results for files whose content did not change.

    ONE_OFF: the process ends with this build (not --watch); see parallel.map_parse.
    """
    todo = [reread(src) for src in sources if not cache.reusable(src)]
    # a one-off build decodes the saved results (~35 ms at 1,000 procedures) while its changed files are parsed
    fresh = parallel.map_parse(todo, config, expander, workers, one_off, meanwhile=lambda: cache.parsed,
                               batches=cache.saved)
    parsing = {src.rel + src.kind for src in todo}
    results = _reuse(sources, parsing, cache)
    lost = [reread(src) for src in sources if src.rel + src.kind not in parsing and src.rel + src.kind not in results]
    todo += lost  # listed in the file's head, but its results turned out unreadable: parsed here after all
    fresh += parallel.map_parse(lost, config, expander, workers)
    for src, result in zip(todo, fresh, strict=True):
        results[src.rel + src.kind] = cache.parsed[src.digest + src.kind] = result
    parsed = Parsed(fresh=len(todo))
    for src in sources:
        item, problems = results[src.rel + src.kind]
        parsed.problems += problems
        if isinstance(item, Procedure):
            parsed.procedures.append(item)
        elif isinstance(item, Notice):
            parsed.notices.append(item)
        elif isinstance(item, Intro):
            parsed.intro = item
        else:  # its front matter (or all of it) failed
            if item is not None:  # an Unparsed: its body's links and files are still checked
                parsed.failed.append(item)
            if src.kind == "procedure":
                parsed.unparsed.add(src.rel)
    return parsed


def _restamp(item: Procedure | Notice | Intro, src: SourceFile) -> None:
    """A file read again (touched, copied, checked out) but unchanged: keep the stamp it has now, so the
    next one-off build can trust it instead of reading it every time."""
    if src.raw and item.source.stamp != src.stamp:
        item.source = replace(item.source, stamp=src.stamp)


def _reuse(sources: list[SourceFile], parsing: set[str], cache: BuildCache) -> dict[str, tuple]:
    """The saved results of SOURCES not being parsed again (by rel+kind), each with the file's stamp now."""
    reused = {}
    for src in sources:
        hit = None if src.rel + src.kind in parsing else cache.parsed.get(src.digest + src.kind)
        if hit is not None:
            _restamp(hit[0], src)
            reused[src.rel + src.kind] = hit
    return reused
