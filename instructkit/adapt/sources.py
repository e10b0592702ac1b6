"""Source readers: each dataset layout in, a stream of ``Item`` (one question or caption) out.

A reader yields ``Item`` for a usable row and ``Bad`` for a row it cannot use (missing question, an
annotation without its question, ...), so the job can fail or skip with the file and line named. Readers
never touch the images; ``image`` is the path relative to the image root, from the source's file-name
convention (``--image-pattern`` overrides it).
"""

from __future__ import annotations

import abc
import codecs
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from ..errors import FormatError, RowError, UsageError
from ..formats import read_rows
from ..records import BAD_JSON
from .jsonstream import scan_meta, stream_array, top_keys

SOURCES = ("auto", "vqav2", "gqa", "aokvqa", "textvqa", "coco-captions", "generic")

MISSING_QUESTION = "missing-question"
MISSING_ANSWER = "missing-answer"
MISSING_IMAGE_FIELD = "missing-image-field"
NO_ANNOTATION = "no-annotation"
ORPHAN_ANNOTATION = "orphan-annotation"
BAD_CHOICES = "bad-choices"

COCO_2014 = "COCO_{subtype}_{image_id:012d}.jpg"
COCO_2017 = "{image_id:012d}.jpg"


class Item:
    """One question (or caption) of a source, before templating."""

    __slots__ = ("file", "line", "image", "question", "answers", "confidences", "choices", "correct", "ocr",
                 "sid", "extra", "row")

    def __init__(self, file: str, line: int | None, image: str | None, question: str | None,
                 answers: list[str], confidences: list[str] | None = None, choices: list[str] | None = None,
                 correct: int | None = None, ocr: list[str] | None = None, sid: Any = None,
                 extra: dict | None = None, row: int | None = None):
        self.file = file
        self.line = line
        self.image = image
        self.question = question
        self.answers = answers
        self.confidences = confidences
        self.choices = choices
        self.correct = correct
        self.ocr = ocr
        self.sid = sid
        self.extra = extra
        self.row = row      # index in the source list, for one-line JSON files where ``line`` is None


class Bad:
    """A source row that cannot become a record: the error (with file and line) and the raw data."""

    __slots__ = ("error", "data")

    def __init__(self, error: RowError, data: Any = None):
        self.error = error
        self.data = data


class Source(abc.ABC):
    """A reader: ``name`` (which reader), ``describe`` (a sentence for the user), iterable of Item | Bad."""

    name = "?"
    task = "vqa"

    def __init__(self, path: str | Path, *, image_pattern: str | None = None, image_root: str | Path | None = None):
        self.path = Path(path)
        if not self.path.exists():
            raise FormatError(f"{self.path}: no such file or directory")
        self.image_pattern = image_pattern
        self.image_root = Path(image_root) if image_root else None
        self.variables = {"question"}

    @property
    def describe(self) -> str:
        return f"{self.path}: reading as {self.name}"

    @abc.abstractmethod
    def __iter__(self) -> Iterator[Item | Bad]:
        """Yield one Item per usable source row and one Bad per row that cannot be used."""

    def _bad(self, reason: str, message: str, line: int | None, data: Any = None, row: int | None = None) -> Bad:
        return Bad(RowError(reason, message, file=str(self.path), line=line, row=row), data)

    def _image_name(self, pattern: str, **fields: Any) -> str:
        try:
            return pattern.format(**fields)
        except (KeyError, IndexError, ValueError) as exc:
            raise UsageError(f"--image-pattern {pattern!r}: cannot fill it ({exc}); fields available: "
                             f"{', '.join(sorted(fields))}") from None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        value = str(value)
    value = value.strip()
    return value or None


# -- VQAv2 / OK-VQA: questions file + annotations file, joined by question_id ----------------------------

class VQAv2(Source):
    """Questions and annotations are two files joined by ``question_id``. The official files list both in
    the same order, so the join walks them in lockstep and holds nothing; an annotation met before its
    question waits in a small compact index (``pending``) until its question comes."""

    name = "vqav2"

    def __init__(self, path: str | Path, annotations: str | Path, **kw: Any):
        super().__init__(path, **kw)
        self.annotations = Path(annotations)
        if not self.annotations.exists():
            raise FormatError(f"{self.annotations}: no such file")
        self.subtype: str | None = None
        self.pending_peak = 0

    @property
    def describe(self) -> str:
        return f"{self.path} + {self.annotations}: reading as vqav2 (questions + annotations joined by question_id)"

    def _pattern(self, image_id: Any) -> str:
        if self.image_pattern is not None:
            return self.image_pattern
        # VQAv2 uses COCO 2014 names; COCO 2017 (and instructkit's sample) use the bare 12-digit id:
        # pick the one that exists under the image root on the first row.
        root = self.image_root or Path(".")
        for pattern in (COCO_2014, COCO_2017):
            if (root / self._image_name(pattern, image_id=image_id, subtype=self.subtype or "")).exists():
                return pattern
        return COCO_2014

    def __iter__(self) -> Iterator[Item | Bad]:
        meta: dict[str, Any] = {}
        questions = stream_array(self.path, "questions", meta)
        annotations = stream_array(self.annotations, "annotations")
        pending: dict[Any, tuple] = {}
        ann_done = False
        pattern: str | None = None
        qfile = str(self.path)
        for line, row, q in questions:
            if not isinstance(q, dict):
                yield self._bad("wrong-type", f"expected a question object, got {type(q).__name__}", line, q, row)
                continue
            qid = q.get("question_id")
            found = pending.pop(qid, None)
            while found is None and not ann_done:
                try:
                    aline, arow, ann = next(annotations)
                except StopIteration:
                    ann_done = True
                    break
                aqid = ann.get("question_id") if isinstance(ann, dict) else None
                packed = _pack_annotation(aline, arow, ann)
                if aqid == qid:
                    found = packed
                else:
                    pending[aqid] = packed
                    if len(pending) > self.pending_peak:
                        self.pending_peak = len(pending)
            question = _text(q.get("question"))
            if found is None:
                yield self._bad(NO_ANNOTATION, f"question_id {qid!r} has no annotation in {self.annotations}",
                                line, q, row)
                continue
            if question is None:
                yield self._bad(MISSING_QUESTION, f"question_id {qid!r}: question is missing or empty", line, q, row)
                continue
            answers, confidences, mc = _unpack(found)
            if not answers and mc:
                answers = [mc]
            if not answers:
                yield self._bad(MISSING_ANSWER, f"question_id {qid!r}: the annotation has no answers", line, q, row)
                continue
            image_id = q.get("image_id")
            if image_id is None:
                yield self._bad(MISSING_IMAGE_FIELD, f"question_id {qid!r}: no image_id", line, q, row)
                continue
            if pattern is None:
                if self.subtype is None:
                    self.subtype = meta.get("data_subtype")
                if self.subtype is None and (self.image_pattern is None or "{subtype" in self.image_pattern):
                    # data_subtype came after the questions list: one extra pass to find it.
                    self.subtype = scan_meta(self.path, "questions").get("data_subtype", "")
                pattern = self._pattern(image_id)
            image = self._image_name(pattern, image_id=image_id, subtype=self.subtype or "", question_id=qid)
            yield Item(qfile, line, image, question, answers, confidences, sid=qid, row=row)
        for aline, arow, ann in annotations:
            aqid = ann.get("question_id") if isinstance(ann, dict) else None
            pending[aqid] = _pack_annotation(aline, arow, ann)
        for aqid, packed in pending.items():
            yield Bad(RowError(ORPHAN_ANNOTATION, f"annotation for question_id {aqid!r} has no question in "
                               f"{self.path}", file=str(self.annotations), line=packed[0], row=packed[1]),
                      {"question_id": aqid})


_CONF_CODE = {"yes": "y", "maybe": "m", "no": "n", None: "-"}
_CONF_NAME = {"y": "yes", "m": "maybe", "n": "no", "-": None}


def _pack_annotation(line: int | None, row: int, ann: Any) -> tuple:
    """Compact form of one annotation while it waits in the join index: (line, row, answers joined by \x1f,
    confidence codes, multiple_choice_answer). Two strings instead of two lists of ten strings: about a
    quarter of the memory (measured by bench/adapt_throughput.py)."""
    if not isinstance(ann, dict):
        return (line, row, "", "", None)
    answers = []
    codes = []
    for a in ann.get("answers") or ():
        if isinstance(a, dict):
            answers.append(str(a.get("answer", "")))
            conf = a.get("answer_confidence")
            codes.append(_CONF_CODE.get(conf, "?") if conf.__class__ is str or conf is None else "?")
        else:
            answers.append(str(a))
            codes.append("-")
    joined = "\x1f".join(answers)
    if len(answers) > 1 and joined.count("\x1f") != len(answers) - 1:
        return (line, row, answers, "".join(codes), _text(ann.get("multiple_choice_answer")))
    return (line, row, joined if answers else "", "".join(codes), _text(ann.get("multiple_choice_answer")))


def _unpack(packed: tuple) -> tuple[list[str], list[str | None], str | None]:
    _, _, answers, codes, mc = packed
    if answers.__class__ is str:
        answers = answers.split("\x1f") if answers or codes else []
    return answers, [_CONF_NAME.get(c) for c in codes], mc


# -- GQA: {question_id: {imageId, question, answer, fullAnswer, ...}} --------------------------------------

class GQA(Source):
    name = "gqa"

    def __iter__(self) -> Iterator[Item | Bad]:
        from .jsonstream import JsonStream

        pattern = self.image_pattern or "{image_id}.jpg"
        file = str(self.path)
        with JsonStream(self.path) as js:
            for line, row, qid, q in js.members():
                if not isinstance(q, dict):
                    yield self._bad("wrong-type", f"question {qid!r}: expected an object", line, q, row)
                    continue
                question = _text(q.get("question"))
                if question is None:
                    yield self._bad(MISSING_QUESTION, f"question {qid!r}: question is missing or empty", line, q, row)
                    continue
                answer = _text(q.get("answer"))
                if answer is None:
                    yield self._bad(MISSING_ANSWER, f"question {qid!r}: answer is missing or empty", line, q, row)
                    continue
                if q.get("imageId") is None:
                    yield self._bad(MISSING_IMAGE_FIELD, f"question {qid!r}: no imageId", line, q, row)
                    continue
                extra = {"full_answer": q["fullAnswer"]} if q.get("fullAnswer") else None
                image = self._image_name(pattern, image_id=q["imageId"], question_id=qid)
                yield Item(file, line, image, question, [answer], sid=qid, extra=extra, row=row)


# -- A-OKVQA: a JSON list of {question_id, image_id, question, choices, correct_choice_idx, ...} -----------

class AOKVQA(Source):
    name = "aokvqa"

    def __init__(self, path: str | Path, **kw: Any):
        super().__init__(path, **kw)
        self.variables = {"question", "options"}

    def __iter__(self) -> Iterator[Item | Bad]:
        pattern = self.image_pattern or COCO_2017
        file = str(self.path)
        for line, q in read_rows(self.path, "json"):
            qid = q.get("question_id")
            question = _text(q.get("question"))
            if question is None:
                yield self._bad(MISSING_QUESTION, f"question_id {qid!r}: question is missing or empty", line, q)
                continue
            choices = q.get("choices")
            correct = q.get("correct_choice_idx")
            if choices is not None and (not isinstance(choices, list) or len(choices) < 2 or (
                    correct is not None and not (isinstance(correct, int) and 0 <= correct < len(choices)))):
                yield self._bad(BAD_CHOICES, f"question_id {qid!r}: choices must be a list of 2 or more and "
                                "correct_choice_idx an index into it", line, q)
                continue
            direct = [str(a) for a in q.get("direct_answers") or ()]
            if correct is None and not direct:
                yield self._bad(MISSING_ANSWER, f"question_id {qid!r}: no correct_choice_idx and no "
                                "direct_answers (a test split?)", line, q)
                continue
            if q.get("image_id") is None:
                yield self._bad(MISSING_IMAGE_FIELD, f"question_id {qid!r}: no image_id", line, q)
                continue
            image = self._image_name(pattern, image_id=q["image_id"], question_id=qid)
            extra = {"rationales": q["rationales"]} if q.get("rationales") else None
            yield Item(file, line, image, question, direct, choices=[str(c) for c in choices] if choices else None,
                       correct=correct, sid=qid, extra=extra)


# -- TextVQA: {"data": [{question, image_id, answers, ocr_tokens, question_id}]} ---------------------------

class TextVQA(Source):
    name = "textvqa"

    def __init__(self, path: str | Path, **kw: Any):
        super().__init__(path, **kw)
        self.variables = {"question", "ocr_tokens"}

    def __iter__(self) -> Iterator[Item | Bad]:
        pattern = self.image_pattern or "{image_id}.jpg"
        file = str(self.path)
        for line, row, q in stream_array(self.path, "data"):
            if not isinstance(q, dict):
                yield self._bad("wrong-type", "expected a question object", line, q, row)
                continue
            qid = q.get("question_id")
            question = _text(q.get("question"))
            if question is None:
                yield self._bad(MISSING_QUESTION, f"question_id {qid!r}: question is missing or empty", line, q, row)
                continue
            answers = [str(a) for a in q.get("answers") or ()]
            if not answers:
                yield self._bad(MISSING_ANSWER, f"question_id {qid!r}: no answers (a test split?)", line, q, row)
                continue
            if q.get("image_id") is None:
                yield self._bad(MISSING_IMAGE_FIELD, f"question_id {qid!r}: no image_id", line, q, row)
                continue
            image = self._image_name(pattern, image_id=q["image_id"], question_id=qid)
            ocr = [str(t) for t in q.get("ocr_tokens") or ()]
            yield Item(file, line, image, question, answers, ocr=ocr, sid=qid, row=row)


# -- COCO captions: {"images": [{id, file_name}], "annotations": [{image_id, caption}]} --------------------

class COCOCaptions(Source):
    name = "coco-captions"
    task = "caption"

    def __init__(self, path: str | Path, **kw: Any):
        super().__init__(path, **kw)
        self.variables = set()

    def __iter__(self) -> Iterator[Item | Bad]:
        meta: dict[str, Any] = {}
        names: dict[Any, str] | None = None
        file = str(self.path)
        for line, row, ann in stream_array(self.path, "annotations", meta):
            if names is None:
                images = meta.get("images")
                if images is None:
                    images = scan_meta(self.path, "annotations").get("images") or []
                names = {im.get("id"): im.get("file_name") for im in images if isinstance(im, dict)}
            if not isinstance(ann, dict):
                yield self._bad("wrong-type", "expected an annotation object", line, ann, row)
                continue
            caption = _text(ann.get("caption"))
            if caption is None:
                yield self._bad(MISSING_ANSWER, f"annotation {ann.get('id')!r}: caption is missing or empty",
                                line, ann, row)
                continue
            image_id = ann.get("image_id")
            if self.image_pattern is not None:
                image = self._image_name(self.image_pattern, image_id=image_id)
            else:
                image = names.get(image_id)
                if image is None:
                    yield self._bad(MISSING_IMAGE_FIELD, f"annotation {ann.get('id')!r}: image_id {image_id!r} "
                                    "is not in the file's images list", line, ann, row)
                    continue
            yield Item(file, line, image, None, [caption], extra={"image_id": image_id, "caption_id": ann.get("id")},
                       row=row)


# -- Generic table / JSONL / parquet / HF dataset with named columns --------------------------------------

class Generic(Source):
    name = "generic"

    def __init__(self, path: str | Path, *, image_col: str = "image", question_col: str = "question",
                 answer_col: str | None = None, choices_col: str | None = None, ocr_col: str | None = None,
                 id_col: str | None = None, **kw: Any):
        super().__init__(path, **kw)
        self.image_col = image_col
        self.question_col = question_col
        self.answer_col = answer_col
        self.choices_col = choices_col
        self.ocr_col = ocr_col
        self.id_col = id_col
        # (first byte, end byte, line number of the first byte): one worker's slice of a JSONL file
        self.byte_range: tuple[int, int | None, int] | None = None
        self._checked = False       # the first row's columns have been checked
        self.variables = {"question"} | ({"options"} if choices_col else set()) | ({"ocr_tokens"} if ocr_col else set())

    @property
    def describe(self) -> str:
        return (f"{self.path}: reading as generic table (image={self.image_col!r}, question={self.question_col!r}, "
                f"answer={self.answer_col or 'answers|answer'!r})")

    def _check_columns(self, row: dict, line: int) -> None:
        if self.answer_col is None:
            self.answer_col = "answers" if "answers" in row else "answer"
        wanted = [("--image-col", self.image_col), ("--question-col", self.question_col),
                  ("--answer-col", self.answer_col), ("--choices-col", self.choices_col),
                  ("--ocr-col", self.ocr_col), ("--id-col", self.id_col)]
        for flag, col in wanted:
            if col is not None and col not in row:
                raise UsageError(f"{self.path}:{line}: no column {col!r} ({flag}); available columns: "
                                 f"{', '.join(sorted(map(str, row)))}")

    def _rows(self) -> Iterator[tuple[int, Any]]:
        """(line, row dict) or (line, RowError) for a line that is not a JSON object (non-JSONL inputs)."""
        yield from read_rows(self.path)

    def __iter__(self) -> Iterator[Item | Bad]:
        self._checked = False
        if self.path.is_file() and self.path.suffix.lower() == ".jsonl":
            return self._iter_jsonl()
        return (self._item(line, row) for line, row in self._rows())

    def _iter_jsonl(self) -> Iterator[Item | Bad]:
        """The hot loop of million-row inputs: reading, parsing and the usual row's checks in one generator;
        any other row (and the first, which checks the columns) goes through ``_item``."""
        loads = orjson.loads
        file = str(self.path)
        start, end, first_line = self.byte_range or (0, None, 1)
        pos = start
        ic, qc, idc = self.image_col, self.question_col, self.id_col
        plain = self.choices_col is None and self.ocr_col is None and self.image_pattern is None
        ac = None
        with open(self.path, "rb") as fh:
            fh.seek(start)
            for line, raw in enumerate(fh, first_line):
                if end is not None:
                    if pos >= end:
                        return
                    pos += len(raw)
                try:
                    row = loads(raw)
                except orjson.JSONDecodeError:
                    if not raw.strip():
                        continue
                    if line == 1 and raw.startswith(codecs.BOM_UTF8):
                        yield self._item(line, loads(raw[3:]))
                        continue
                    yield Bad(RowError(BAD_JSON, "malformed JSON line", file=file, line=line), None)
                    continue
                if ac is not None and row.__class__ is dict:
                    question = row.get(qc)
                    image = row.get(ic)
                    answers = row.get(ac)
                    if (question.__class__ is str and image.__class__ is str and answers.__class__ is list
                            and question and image and answers and answers[0].__class__ is str
                            and not question.isspace() and None not in answers):
                        yield Item(file, line, image, question, answers, None, None, None, None,
                                   row.get(idc) if idc is not None else None)
                        continue
                yield self._item(line, row)
                if plain and self._checked:
                    ac = self.answer_col

    def _item(self, line: int, row: Any) -> Item | Bad:
        if row.__class__ is not dict:
            if not isinstance(row, RowError):
                row = RowError("wrong-type", f"expected a JSON object, got {type(row).__name__}",
                               file=str(self.path), line=line)
            return Bad(row, None)
        if not self._checked:
            self._check_columns(row, line)
            self._checked = True
        ic, qc, cc, oc, idc = self.image_col, self.question_col, self.choices_col, self.ocr_col, self.id_col
        ac = self.answer_col
        question = row.get(qc)
        if question.__class__ is not str or not question or question.isspace():
            question = _text(question)
            if question is None:
                return self._bad(MISSING_QUESTION, f"column {qc!r} is missing or empty", line, row)
        image = row.get(ic)
        if image.__class__ is not str:
            image = _image_value(image)
        if not image:
            return self._bad(MISSING_IMAGE_FIELD, f"column {ic!r} is missing or empty", line, row)
        answers = row.get(ac)
        if answers.__class__ is list and answers and answers[0].__class__ is str and None not in answers:
            confidences = None
        else:
            answers, confidences = _answer_list(answers)
        choices = correct = None
        if cc is not None:
            choices = row.get(cc)
            if isinstance(choices, str):
                choices = [c.strip() for c in choices.split("|")]
            if not isinstance(choices, list) or len(choices) < 2:
                return self._bad(BAD_CHOICES, f"column {cc!r} must hold 2 or more choices", line, row)
            choices = [str(c) for c in choices]
            correct = _correct_index(row.get(ac), choices)
            if correct is None:
                return self._bad(BAD_CHOICES, f"answer {row.get(ac)!r} is neither an index into nor one of "
                                 f"the choices", line, row)
        elif not answers:
            return self._bad(MISSING_ANSWER, f"column {ac!r} is missing or empty", line, row)
        ocr = None
        if oc is not None:
            ocr = row.get(oc) or []
            ocr = ocr.split() if isinstance(ocr, str) else [str(t) for t in ocr]
        if self.image_pattern is not None:
            image = self._image_name(self.image_pattern, image=image, image_id=image)
        sid = row.get(idc) if idc is not None else None
        return Item(str(self.path), line, image, question, answers, confidences, choices, correct, ocr, sid)


def _image_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):  # datasets.Image feature without decoding: {"path": ..., "bytes": ...}
        return _text(value.get("path"))
    if isinstance(value, (int, float)):
        return str(value)
    return _text(value)


def _answer_list(value: Any) -> tuple[list[str], list[str] | None]:
    if value is None:
        return [], None
    if isinstance(value, str):
        return ([value] if value.strip() else []), None
    if isinstance(value, list):
        if value and isinstance(value[0], dict):
            answers = [str(a.get("answer", "")) for a in value if isinstance(a, dict)]
            return answers, [a.get("answer_confidence") for a in value if isinstance(a, dict)]
        return [str(a) for a in value if a is not None], None
    return [str(value)], None


def _correct_index(value: Any, choices: list[str]) -> int | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, int) and not isinstance(value, bool):
        return value if 0 <= value < len(choices) else None
    if isinstance(value, str):
        v = value.strip()
        if v in choices:
            return choices.index(v)
        if len(v) == 1 and "A" <= v.upper() <= "Z" and ord(v.upper()) - 65 < len(choices):
            return ord(v.upper()) - 65
        if v.isdigit() and int(v) < len(choices):
            return int(v)
    return None


# -- choosing a reader -------------------------------------------------------------------------------------

def sniff(path: Path, annotations: Path | None) -> str:
    """Which reader fits ``path`` (a sentence-free name; ``open_source`` says why to the user)."""
    if annotations is not None:
        return "vqav2"
    if path.is_dir() or path.suffix.lower() not in (".json",):
        return "generic"
    from ..formats._json import first_char

    char = first_char(path)
    if char == "[":
        for _, first in read_rows(path, "json"):
            if "correct_choice_idx" in first or "direct_answers" in first:
                return "aokvqa"
            return "generic"
        return "generic"
    if char != "{":
        return "generic"
    keys, first = top_keys(path)
    if first is None:
        return "generic"
    key, value = first
    if key == "questions":
        raise UsageError(f"{path} is a VQAv2-style questions file: give its annotations file with --annotations")
    if key == "annotations" and isinstance(value, dict):
        if "caption" in value:
            return "coco-captions"
        if "answers" in value:
            raise UsageError(f"{path} is a VQAv2-style annotations file: pass the questions file as INPUT "
                             "and this one with --annotations")
    if key == "data":
        return "textvqa"
    if isinstance(value, dict) and "imageId" in value:
        return "gqa"
    return "generic"


def open_source(path: str | Path, source: str = "auto", *, annotations: str | Path | None = None,
                **kw: Any) -> Source:
    path = Path(path)
    if not path.exists():
        raise FormatError(f"{path}: no such file or directory")
    if source not in SOURCES:
        raise UsageError(f"unknown --source {source!r}; choose one of {', '.join(SOURCES)}")
    name = sniff(path, Path(annotations) if annotations else None) if source == "auto" else source
    generic_kw = {k: kw.pop(k) for k in ("image_col", "question_col", "answer_col", "choices_col", "ocr_col",
                                         "id_col") if k in kw}
    if name == "vqav2":
        if annotations is None:
            raise UsageError("--source vqav2 needs the annotations file (--annotations)")
        return VQAv2(path, annotations, **kw)
    if annotations is not None:
        raise UsageError(f"--annotations only applies to --source vqav2, not {name}")
    if name == "generic":
        return Generic(path, **generic_kw, **kw)
    return {"gqa": GQA, "aokvqa": AOKVQA, "textvqa": TextVQA, "coco-captions": COCOCaptions}[name](path, **kw)
