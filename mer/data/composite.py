"""What every composite dataset shares: member corpora under one root, each read by its own adapter.

A composite (the MEGC2019 list, the Multiple Aggregation Networks merge) has one folder
``data/raw/<name>/`` holding one link per member corpus.  Member roots are relative to it, so every
``frame_dir`` stays relative to one dataset root and ``dvc.lock`` records no absolute path.  Clips
keep their member's corpus, subject and frame rate; the composite's subjects are written
``member/subject`` internally so two members' subject '01' never merge.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any, ClassVar, Mapping

from mer.data.adapters import CorpusAdapter, Option, adapter_class
from mer.errors import MerError


class Composite(CorpusAdapter):
    """Base class: builds the member adapters and routes paths and ids to them."""

    options: ClassVar[dict[str, Option]] = {
        "members": Option(dict, help="member corpus name -> that member's adapter config; its "
                                     "root is relative to this root"),
        "fps": Option(float, 1.0, "not settable: each clip keeps its member's frame rate"),
    }
    root_holds: ClassVar[str] = ""   # what the composite folder holds besides the member links

    @classmethod
    def _resolve(cls, dataset: str, cfg: Mapping[str, Any]) -> dict[str, Any]:
        if "fps" in cfg:  # would be silently meaningless: every member has its own frame rate
            raise MerError("a composite has no frame rate of its own", f"params data.{dataset}.fps",
                           "remove 'fps'; set it in the member's config if needed")
        return super()._resolve(dataset, cfg)

    def __init__(self, dataset: str, cfg: Mapping[str, Any]):
        super().__init__(dataset, cfg)
        self.members: dict[str, CorpusAdapter] = {}
        self.member_cfg: dict[str, dict[str, Any]] = {}
        self.member_dir: dict[str, str] = {}
        if not self.cfg["members"]:
            raise MerError("a composite needs at least one member", f"params data.{dataset}",
                           "add members: {casme2: {adapter: casme2, root: casme2}, ...}")
        for member, mcfg in self.cfg["members"].items():
            where = f"params data.{dataset}.members.{member}"
            if not isinstance(mcfg, Mapping) or "adapter" not in mcfg or "root" not in mcfg:
                raise MerError("a member needs at least 'adapter' and 'root'", where,
                               f"e.g. {member}: {{adapter: {member}, root: {member}}}")
            rel = PurePosixPath(str(mcfg["root"]))
            if rel.is_absolute() or ".." in rel.parts:
                raise MerError(f"member root '{rel}' must be a folder inside {self.root}", where,
                               f"link the corpus there (ln -s /path/to/corpus "
                               f"{self.root}/{member}) and set root: {member}")
            name = str(mcfg["adapter"])
            cls = adapter_class(name, where)
            if issubclass(cls, Composite):
                raise MerError(f"member '{member}' is itself a composite ('{name}')", where,
                               "list its member corpora here directly")
            self.check_member_adapter(name, where)
            full = {**mcfg, "root": str(self.root / rel)}
            full.setdefault("corpus", member)
            try:
                adapter = cls(member, full)
            except MerError as exc:  # name the member's place in the composite's config
                raise MerError(exc.what, where, exc.fix) from None
            self.check_member(member, adapter, where)
            self.members[member] = adapter
            self.member_cfg[member] = full
            self.member_dir[member] = rel.as_posix()

    # ------------------------------------------------------------------ hooks for subclasses
    def check_member_adapter(self, name: str, where: str) -> None:
        """Refuse an adapter name before it is built (e.g. one the composite cannot map ids for)."""

    def check_member(self, member: str, adapter: CorpusAdapter, where: str) -> None:
        """Refuse a built member (e.g. one whose emotions the composite cannot label)."""

    # ------------------------------------------------------------------ CorpusAdapter API
    def check_layout_root(self) -> None:
        """The composite's own folder (members check theirs when they are ingested)."""
        if not self.root.is_dir():
            raise MerError("composite folder not found", self.root,
                           f"create it with {self.root_holds}one link per member: "
                           + ", ".join(f"ln -s /path/to/{m} {self.root}/{d}"
                                       for m, d in self.member_dir.items()))

    def check_layout(self) -> None:
        self.check_layout_root()
        for adapter in self.members.values():
            adapter.check_layout()

    def _split(self, subject: str) -> tuple[str, CorpusAdapter, str]:
        member, _, inner = subject.partition("/")
        if member not in self.members:
            raise MerError(f"subject '{subject}' names no member", f"params data.{self.dataset}")
        return member, self.members[member], inner

    def frame_dir(self, subject: str, clip: str) -> str:
        member, adapter, inner = self._split(subject)
        return f"{self.member_dir[member]}/{adapter.frame_dir(inner, clip)}"

    def frame_name(self, subject: str, clip: str, n: int) -> str:
        _, adapter, inner = self._split(subject)
        return adapter.frame_name(inner, clip, n)

    def clip_id(self, subject: str, clip: str) -> str:
        member, adapter, inner = self._split(subject)
        return f"{member}_{adapter.clip_id(inner, clip)}"
