"""The Multiple Aggregation Networks merged corpus: CASME + CASME II + SMIC in four classes.

She et al. (Multiple Aggregation Networks) pool the three corpora because each alone is too small
for a deep model, and regroup every emotion into positive (happiness), surprise, negative
(disgust, fear, sadness) and others (movements of unclear emotion: tense, repression, contempt,
CASME II's 'others'); SMIC's own po/ne/sur keep their class.  Unlike MEGC2019 there is no
official clip list: every clip of every member belongs to the corpus.

Each member is read, fixed and validated by its own adapter (:func:`mer.data.ingest.ingest`), so
the composite inherits every check of its members.  Its label comes from one place, the ``man``
vocabulary of ``schemes.yaml``: its aliases map each member's canonical emotion onto the four
classes, and its schemes (``man_4class``) become the manifest's label columns.  A member whose
vocabulary holds an emotion the ``man`` vocabulary cannot map is refused when the composite is
configured, so no clip is ever put in a class by guess.

Config (``data.<name>``)::

    adapter: man_composite
    root: data/raw/man_merged      # one folder (or link) per member
    members:                       # key = the member's corpus name in the manifest
      casme:  {adapter: casme, root: casme}
      casme2: {adapter: casme2, root: casme2}
      smic:   {adapter: smic, root: smic, release: clips, modality: HS}

A member's ``root`` is relative to the composite's root, so every ``frame_dir`` stays relative to
that one root and no absolute path reaches params or ``dvc.lock``.  Manifest rows keep the
member's subject and set ``corpus`` to the member, so the grouping key ``corpus/subject`` never
merges two corpora's subjects; ``clip_id`` is ``<member>_<member clip id>``; ``emotion`` keeps the
member's emotion and the label columns are the ``man`` schemes only.
"""

from __future__ import annotations

import dataclasses

from mer.data.adapters import (
    Annotation,
    CorpusAdapter,
    register_adapter,
)
from mer.data.composite import Composite
from mer.data.ingest import ingest
from mer.data.manifest import Clip
from mer.data.schemes import SCHEMES_FILE, get_vocabulary, schemes_for
from mer.errors import MerError

VOCABULARY = "man"


@register_adapter("man_composite")
class ManComposite(Composite):
    """Every clip of several member corpora, each read by its own adapter, in four classes."""

    vocabulary = VOCABULARY

    def check_member(self, member: str, adapter: CorpusAdapter, where: str) -> None:
        merged, own = get_vocabulary(self.vocabulary), get_vocabulary(adapter.vocabulary)
        if unmapped := [e for e in own.emotions if merged.normalise(e) is None]:
            raise MerError(f"emotions {unmapped} of vocabulary '{own.name}' have no class in "
                           f"vocabulary '{merged.name}'", where,
                           f"add them to vocabularies.{merged.name}.aliases in "
                           f"{SCHEMES_FILE.name} (or drop the member)")

    # ------------------------------------------------------------------ CorpusAdapter API
    # The composite's own annotations are its members', with subjects 'member/subject' and
    # emotions already in the merged classes; paths are the member's, under the member's folder.
    def annotations(self) -> list[Annotation]:
        merged = get_vocabulary(self.vocabulary)
        out = []
        for member, adapter in self.members.items():
            own = get_vocabulary(adapter.vocabulary)
            for a in adapter.annotations():
                emotion = own.normalise(a.emotion)
                out.append(dataclasses.replace(
                    a, subject=f"{member}/{a.subject}",
                    emotion=(merged.normalise(emotion) or "") if emotion else a.emotion))
        return out

    def parse_aus(self, text: str) -> list[str]:
        raise ValueError("a composite's action units are parsed by its member's adapter")

    # ------------------------------------------------------------------------------ ingest
    def ingest_composite(self, workers: int | None, apex_policy: str) -> list[Clip]:
        """Manifest rows of every member's clips, member by member in config order.

        Every member is ingested before anything is reported, so one MerError lists the problems
        of all members.
        """
        self.check_layout_root()
        merged = get_vocabulary(self.vocabulary)
        schemes = schemes_for(self.vocabulary)
        per_member: dict[str, list[Clip]] = {}
        errors: list[str] = []
        for member in self.members:
            try:
                per_member[member] = ingest(member, self.member_cfg[member], workers, apex_policy)
            except MerError as exc:
                errors.append(f"member '{member}' ({self.member_cfg[member]['root']}): {exc}")
        if errors:
            raise MerError(f"{len(errors)} member(s) of dataset '{self.dataset}' have problems:\n"
                           + "\n".join(errors), self.root,
                           "apply each line's fix, then re-run ingest")
        out = []
        for member, clips in per_member.items():
            for c in clips:
                cls = merged.normalise(c.emotion)  # checked for the whole vocabulary in __init__
                assert cls is not None, (member, c.clip_id, c.emotion)
                out.append(dataclasses.replace(
                    c, clip_id=f"{member}_{c.clip_id}",
                    frame_dir=f"{self.member_dir[member]}/{c.frame_dir}",
                    labels={s.name: s.label(cls) for s in schemes}))
        return out

