"""Train/test lists: UCF-101, HMDB-51, Kinetics-400 CSV and a generic format.

Each reader returns [(video_id, label)] with labels indexing the extracted dataset's classes
(index.json), so a list naming a video or class the shards lack is an error naming it, and
so is a label that contradicts the class the dataset gives the same video. Formats are told
apart by content (a renamed or filtered copy of an official list is read as the official
one), and lines are read as they are: official annotation files have no comment syntax, and
real names begin with '#' (HMDB-51's "#20_Rhythm_clap_u_nm_np1_fr_goo_1.avi").

- ucf101: trainlist0N.txt ("Class/v_Class_g08_c01.avi 1", labels from classInd.txt beside it,
  1-based) or testlist0N.txt (no labels: the folder is the class).
- hmdb51: the *_test_splitN.txt files ("clip.avi 1"; 1 = train, 2 = test, 0 = unused), given
  as one of them or their folder (then --split picks N); the file's prefix is the class.
- kinetics: CSV with columns label, youtube_id, ... ; videos are matched by YouTube id
  (files named <youtube_id>_<start>_<end> as the usual download scripts write them).
- generic: "relative/path [label]" per line, the path with or without extension, the label a
  0-based integer or a class name, by default the video's folder class. A path may contain
  spaces: the last word is taken as the label only if it is an integer or a class name.
"""
import json
import re
from pathlib import Path

import numpy as np

from preprocess.discover import strip_video_extension
from preprocess.errors import TeamnetError
from preprocess.text import kinetics_entries, plural, quoted, ssv2_entries, text_lines

from .config import LIST_FORMATS, SHIPPED_FLIP_PAIRS


class SplitError(TeamnetError):
    """A list that does not fit the dataset; the message names the file and the entry."""


# a UCF-101 list line: Class/v_Class_g08_c01.avi, then its 1-based label in a training list
_UCF101_LINE = re.compile(r"[^/\s]+/v_[^/\s]+_g\d+_c\d+\.avi(\s+\d+)?")


def detect_format(path):
    """The format of a list, from what it holds (HMDB-51's split files, which carry their
    class only in their names, from those names)."""
    path = Path(path)
    if re.search(r"_test_split\d+\.txt$", path.name) or (
            path.is_dir() and any(path.glob("*_test_split*.txt"))):
        return "hmdb51"
    if path.is_dir():
        return "generic"
    first = next((line for _, line in _lines(path)), "")
    if first.startswith("[") and ssv2_entries(path) is not None:
        return "ssv2"
    if {"label", "youtube_id"} <= {field.strip() for field in first.split(",")}:
        return "kinetics"
    if _UCF101_LINE.fullmatch(first):
        return "ucf101"
    return "generic"


def _lines(path, comments=False):
    """(line number, stripped line) of the non-empty lines; with comments, lines that start
    with '#' are skipped too (our own files only: official lists have no comments)."""
    for number, line in text_lines(path):
        if line.strip() and not (comments and line.lstrip().startswith("#")):
            yield number, line.strip()


def _fields(path, number, line, count, expected):
    """A line's whitespace-separated fields, or SplitError unless there are `count` of them."""
    parts = line.split()
    if len(parts) != count:
        raise SplitError(f"{path}:{number}: expected {expected}, got {quoted(line)}")
    return parts


def _class_names(path, class_index):
    """{label: class name} of UCF-101's classInd.txt: the one given (--class-index), else the
    one beside the list; the error names the files searched."""
    class_ind = Path(class_index) if class_index else path.parent / "classInd.txt"
    if not class_ind.is_file():
        raise SplitError(f"{path}: its labels are numbers, and {class_ind} (where their class "
                         "names are looked for) is not there; give the list's class index "
                         "with --class-index FILE (UCF-101's classInd.txt)")
    names = {}
    for number, line in _lines(class_ind):
        label, name = _fields(class_ind, number, line, 2, "'N ClassName'")
        if not label.isdigit():
            raise SplitError(f"{class_ind}:{number}: expected 'N ClassName', got "
                             f"{quoted(line)}")
        names[int(label)] = name
    return class_ind, names


def _ucf101(path, class_index=None):
    entries, names = [], None
    for number, line in _lines(path):
        parts = line.split()
        video = strip_video_extension(parts[0])
        if len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
            raise SplitError(f"{path}:{number}: expected 'Class/clip.avi [N]', got "
                             f"{quoted(line)}")
        if len(parts) > 1:
            if names is None:  # a test list has no labels, and needs no class index
                class_ind, names = _class_names(path, class_index)
            if int(parts[1]) not in names:
                raise SplitError(f"{path}:{number}: label {parts[1]} not in {class_ind}")
            entries.append((number, video, names[int(parts[1])]))
        else:
            entries.append((number, video, None))
    return entries


def _hmdb51(path, role, split):
    if path.is_file():
        split = int(re.search(r"_test_split(\d+)\.txt$", path.name).group(1))
        path = path.parent
    wanted = {"train": ("1",), "test": ("2",), "any": ("0", "1", "2")}[role]
    entries = []
    for file in sorted(path.glob(f"*_test_split{split}.txt")):
        class_name = file.name[:-len(f"_test_split{split}.txt")]
        for number, line in _lines(file):
            name, code = _fields(file, number, line, 2, "'clip.avi 0|1|2'")
            if code in wanted:
                entries.append((number, f"{class_name}/{strip_video_extension(name)}", class_name))
    if not entries:
        raise SplitError(f"{path}: no *_test_split{split}.txt entries for {role}")
    return entries


def _kinetics(path):
    """An official Kinetics CSV's entries, named by clip file name (text.kinetics_entries);
    read_list matches them to the dataset's videos (_match_clips)."""
    entries = kinetics_entries(path)
    if entries is None:
        raise SplitError(f"{path}: expected a Kinetics CSV with columns label, youtube_id")
    return entries


def _ssv2(path):
    return ssv2_entries(path) or []


def _match_clips(entries, by_id):
    """Kinetics and SSv2 entries matched to videos by file name: Kinetics' whole clip name
    (one YouTube video gives several clips in Kinetics-600 and -700: its id alone would merge
    them), or the bare id for files named so. A name matching no video, or several, is kept
    as it is (then reported missing)."""
    named = {}
    for video in by_id:
        named.setdefault(Path(video).name, []).append(video)
    matched = []
    for n, name, label in entries:
        found = named.get(name) or named.get(name[:-14] if name.count("_") >= 2 else None, [])
        matched.append((n, found[0] if len(found) == 1 else name, label))
    return matched


def _generic(path, classes, videos):
    entries = []
    for number, line in _lines(path):
        video, _, label = line.rpartition(" ")
        labelled = label.lstrip("-").isdigit() or label in classes or (
            strip_video_extension(video) in videos)
        if not video or strip_video_extension(line) in videos or not labelled:
            video, label = line, None  # no label: the whole line is the path
        entries.append((number, strip_video_extension(video.strip()),
                        int(label) if label and label.lstrip("-").isdigit() else label))
    return entries


def _cause(disagreeing, classes):
    """Why numeric labels (label, the dataset's class) name other classes than the dataset:
    a shifted base, or another numbering of the classes."""
    for shift, said in ((-1, "1-based (as UCF-101's trainlists) but were read as 0-based"),
                        (1, "0-based but were read as 1-based")):
        if all(0 <= label + shift < len(classes) and classes[label + shift] == known
               for label, known in disagreeing):
            return f"its labels look {said}: give the right --list-format"
    return ("its labels number the classes otherwise (another classInd.txt?): label by class "
            "name, or number the classes as the dataset's sorted class names")


def _check_labels(path, entries, by_id, classes, numeric):
    """Stop at the first entry whose label names another class than the dataset gives its
    video (its folder, or the --labels file it was extracted with)."""
    named = lambda label: classes[label] if 0 <= label < len(classes) else None  # noqa: E731
    wrong = [(n, video, label) for n, video, label in entries
             if named(label) != by_id[video]["class"]]
    if not wrong:
        return
    n, video, label = wrong[0]
    shifted = [(label, by_id[v]["class"]) for line, v, label in wrong if line in numeric]
    cause = _cause(shifted, classes) if shifted else "the list and the dataset disagree"
    said = repr(named(label)) if named(label) else f"{label}, outside 0..{len(classes) - 1},"
    raise SplitError(f"{path}:{n}: {video!r} is labelled {said} but the dataset's class for "
                     f"it is {by_id[video]['class']!r} ({len(wrong)} of {len(entries)} "
                     f"entries disagree); {cause}")


def _why_none(path, entries, by_id):
    """Why none of a list's videos are in a dataset, where a prefix explains it."""
    video = entries[0][1]
    longer = next((v for v in by_id if v.endswith("/" + video)), None)
    if longer:
        return (f"the dataset's ids carry a prefix ({longer!r} for {video!r}): encode the "
                "folder that holds the class folders, not the dataset's root")
    shorter = video.split("/", 1)[-1]
    if shorter in by_id:
        return f"the list's ids carry a prefix ({video!r} for {shorter!r}): remove it"
    return f"is {path} a list of this dataset?"


def list_entries(path, by_id, classes=(), role="train", list_format="auto", split=1,
                 class_index=None):
    """(format, [(line, video, label or None)]) of a list file, its videos matched to the
    ids of by_id where the format names them otherwise (Kinetics and SSv2 by file name);
    role "any": every video an HMDB-51 split file names. Labels are as the file gives them
    (UCF-101's numbers named by class_index, else the classInd.txt beside the list)."""
    path = Path(path)
    if not path.exists():
        raise SplitError(f"{path}: no such list file")
    list_format = detect_format(path) if list_format == "auto" else list_format
    if list_format not in LIST_FORMATS[1:]:
        raise SplitError(f"list format {list_format!r}: choose one of {LIST_FORMATS}")
    if list_format == "generic":
        entries = _generic(path, set(classes), by_id)
    elif list_format == "hmdb51":
        entries = _hmdb51(path, role, split)
    elif list_format == "ucf101":
        entries = _ucf101(path, class_index)
    else:
        entries = {"kinetics": _kinetics, "ssv2": _ssv2}[list_format](path)
    if not entries:
        raise SplitError(f"{path} names no videos")
    if list_format in ("kinetics", "ssv2"):
        entries = _match_clips(entries, by_id)
    return list_format, entries


def listed(path, video_ids, list_format="auto", split=1):
    """(the ids of video_ids that a list names, [(line, video)] of its entries not among
    them): what `encode --list` and `extract --list` work on (labels are not read)."""
    by_id = dict.fromkeys(video_ids)
    _, entries = list_entries(path, by_id, (), "any", list_format, split)
    found = {video for _, video, _ in entries if video in by_id}
    return [v for v in video_ids if v in found], [(n, v) for n, v, _ in entries
                                                  if v not in by_id]


def read_list(path, index, role="train", list_format="auto", split=1, report=None,
              missing="skip", skipped=None, class_index=None):
    """[(video_id, label)] of a list file, checked against the dataset index. report: a
    function given one line saying what was used ("trainlist01.txt: 9,537 videos of 101
    classes (0 skipped)") and a line for each entry skipped (the first few only where many
    videos are missing). missing: "skip" listed videos the dataset lacks (undownloaded
    Kinetics clips: appended to `skipped`, a list, where given) or "error". class_index:
    UCF-101's classInd.txt for a list saved elsewhere."""
    path = Path(path)
    by_id, classes = index["by_id"], index["classes"]
    list_format, entries = list_entries(path, by_id, classes, role, list_format, split,
                                        class_index)
    absent = [(n, video) for n, video, _ in entries if video not in by_id]
    if absent and (missing == "error" or len(absent) == len(entries)):
        n, video = absent[0]
        cause = (_why_none(path, entries, by_id) if len(absent) == len(entries) else
                 "--missing skip trains and evaluates on the videos present")
        raise SplitError(f"{path}:{n}: video {quoted(video)} is not in the extracted dataset "
                         f"({len(absent)} of {len(entries)} entries missing); {cause}")
    if skipped is not None:
        skipped += [video for _, video in absent]
    entries = [entry for entry in entries if entry[1] in by_id]
    label_of = {name: label for label, name in enumerate(classes)}
    # numeric: lines whose label was a number (UCF-101's, through classInd.txt)
    resolved, numeric = [], set()
    for n, video, label in entries:
        if label is None:
            label = by_id[video]["class"]
        elif list_format == "ucf101":
            numeric.add(n)
        if isinstance(label, str):
            if label not in label_of:
                raise SplitError(f"{path}:{n}: class {label!r} is not among the dataset's "
                                 f"{len(classes)} classes")
            label = label_of[label]
        else:
            numeric.add(n)
        resolved.append((n, video, int(label)))
    _check_labels(path, resolved, by_id, classes, numeric)
    result, first, again = [], {}, []  # first: video -> its first line
    for n, video, label in resolved:  # a video counts once, or a test list weights accuracy
        if video in first:
            again.append(f"{path.name}:{n}: {video!r} listed again (first at line "
                         f"{first[video]})")
            continue
        first[video] = n
        result.append((video, label))
    if report:
        report(f"{path.name}: {plural(len(result), 'video')} of "
               f"{plural(len({l for _, l in result}), 'class')} ({len(again) + len(absent)} "
               "skipped)")
        for line in again + [f"{path.name}:{n}: {video!r} is not in the dataset"
                             for n, video in absent[:5]]:
            report(f"  skipped {line}")
        if len(absent) > 5:
            report(f"  and {len(absent) - 5:,} more not in the dataset")
    return result


# UCF-101 names clips cut from one long video v_<Class>_g<group>_c<clip>: its group.
UCF101_GROUP = r"_g(\d+)_c\d+$"


def group_key(pattern, entries):
    """A function video id -> group: the regex's first group (or whole match) where `pattern`
    finds one; "auto" is UCF-101's pattern when every video matches it, else one group a video
    (HMDB-51, Kinetics: no groups); "none" is one group a video."""
    if pattern == "auto":
        pattern = UCF101_GROUP if entries and all(
            re.search(UCF101_GROUP, video) for video, _ in entries) else "none"
    if pattern == "none":
        return lambda video: video
    try:
        regex = re.compile(pattern)
    except re.error as error:
        raise SplitError(f"--group-pattern {pattern!r} is not a regular expression: {error}") from None

    def key(video):
        found = regex.search(video)
        return video if found is None else (found.group(1) if regex.groups else found.group(0))
    return key


def flip_pairs_file(name):
    """The file of --flip-pairs: a shipped one by name (ssv2), else the path given (checked
    when given: config.parse_flip_pairs)."""
    if name in SHIPPED_FLIP_PAIRS:
        return Path(__file__).parent / SHIPPED_FLIP_PAIRS[name]
    return Path(name)


def read_flip_pairs(name, classes, report=None):
    """{label: label} of --flip-pairs (a file of "class,class" lines, either way round, or a
    shipped one by name), for ClipDataset. A pair neither of whose classes the dataset has
    is passed over (a file written for a whole dataset used on part of it); report is given
    a line saying how many pairs apply."""
    path = flip_pairs_file(name)
    label_of = {name: label for label, name in enumerate(classes)}
    pairs, lines = {}, 0
    for number, line in _lines(path, comments=True):
        lines += 1
        names = [name.strip() for name in line.split(",")]
        if len(names) == 2 and not any(name in label_of for name in names):
            continue
        if len(names) != 2 or any(name not in label_of for name in names):
            raise SplitError(f"{path}:{number}: expected 'class,class' naming two of the "
                             f"dataset's {len(classes)} classes, got {quoted(line)}")
        first, second = (label_of[name] for name in names)
        for a, b in ((first, second), (second, first)):
            if pairs.get(a, b) != b:
                raise SplitError(f"{path}:{number}: {classes[a]!r} is paired twice")
            pairs[a] = b
    if report:
        report(f"--flip-pairs {name}: {len(pairs) // 2} of {plural(lines, 'pair')} apply "
               "(the others name classes this dataset lacks)" if len(pairs) // 2 < lines else
               f"--flip-pairs {name}: all {plural(lines, 'pair')} apply")
    return pairs


def hold_out(entries, fraction, seed, pattern="auto"):
    """Split entries into (train, validation), holding out about `fraction` of each class
    (at least one group from every class that has two or more groups), reproducibly from
    seed. Whole groups go one way or the other (group_key): clips cut from one video in both
    would let validation recognise the scene instead of the action."""
    if fraction <= 0:
        return list(entries), []
    rng = np.random.default_rng(seed)
    key = group_key(pattern, entries)
    train, validation = [], []
    for label in sorted({label for _, label in entries}):
        groups = {}
        for entry in (e for e in entries if e[1] == label):
            groups.setdefault(key(entry[0]), []).append(entry)
        names = sorted(groups)
        order = [names[i] for i in rng.permutation(len(names))]
        wanted, held = fraction * sum(map(len, groups.values())), []
        while len(held) < len(order) - 1 and (not held or sum(
                len(groups[g]) for g in held) + len(groups[order[len(held)]]) / 2 <= wanted):
            held.append(order[len(held)])
        validation += [e for g in held for e in groups[g]]
        train += [e for g in order if g not in held for e in groups[g]]
    return sorted(train), sorted(validation)


def read_split_record(path):
    """{part: [(video id, class or None)]} of a run's split.json (train, validation); the
    class is None in the split.json of an earlier version, which listed ids alone."""
    split = json.loads(Path(path).read_text(encoding="utf-8"))
    return {part: [(item, None) if isinstance(item, str) else (item["id"], item["class"])
                   for item in split[part]] for part in ("train", "validation")}
