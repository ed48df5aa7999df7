"""The standard datasets as they are downloaded: replicas of their on-disk layouts and official
annotation files (real naming, CRLF endings, names beginning with '#'), read without a
hand-written converter, and no video silently lost or mislabelled."""
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import synthetic
from cli import main
from preprocess.store import load_index
from preprocess.errors import TeamnetError
from teamnet.splits import SplitError, detect_format, read_flip_pairs, read_list

SMALL = ["--pretrained", "none", "--iframe-arch", "resnet18", "--num-segments", "2",
         "--input-size", "32", "--batch-size", "2", "--workers", "0", "--val-fraction", "0",
         "--epochs", "1"]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def write_clips(root, names, frames=14):
    """Small real clips (FFV1 in the names' containers) at root/NAME, moving differently."""
    for n, name in enumerate(names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        synthetic.write_video(root / name, synthetic.pan(frames, 48, 64, 1 + n % 3, n % 2, seed=n))


def extracted(root, names):
    """Encode and extract clips named as the dataset names them; the extracted folder."""
    write_clips(root / "raw", names)
    assert invoke("encode", root / "raw", root / "enc", "--size", "64x48").exit_code == 0
    result = invoke("extract", root / "enc", root / "ext")
    assert result.exit_code == 0, result.output
    return root / "ext"


def crlf(path, lines):
    """An annotation file as the official downloads have them: Windows line endings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(f"{line}\r\n" for line in lines).encode())
    return path


# --- UCF-101 --------------------------------------------------------------------------------

UCF_CLASSES = ["ApplyEyeMakeup", "Biking", "HandstandPushups"]


@pytest.fixture(scope="module")
def ucf101(tmp_path_factory):
    """UCF-101's layout (UCF-101/<Class>/v_<Class>_gNN_cNN.avi) and ucfTrainTestlist/."""
    root = tmp_path_factory.mktemp("ucf101")
    clips = [f"{c}/v_{c}_g{g:02d}_c0{k}.avi" for c in UCF_CLASSES for g in (8, 9) for k in (1, 2)]
    data = extracted(root, clips)
    lists = root / "ucfTrainTestlist"
    crlf(lists / "classInd.txt", [f"{n} {c}" for n, c in enumerate(UCF_CLASSES, 1)])
    crlf(lists / "trainlist01.txt", [f"{clip} {UCF_CLASSES.index(clip.split('/')[0]) + 1}"
                                     for clip in clips if "_g08_" in clip])
    crlf(lists / "testlist01.txt", [clip for clip in clips if "_g09_" in clip])
    return data, lists


def test_a_renamed_ucf101_list_keeps_its_labels(ucf101, tmp_path):
    data, lists = ucf101
    index = load_index(data)
    official = read_list(lists / "trainlist01.txt", index)
    assert [index["classes"][label] for _, label in official] == [
        video.split("/")[0] for video, _ in official]  # every clip labelled with its class
    # grep -v HandstandPushups trainlist01.txt > ucf_train_3cls.txt: still UCF-101's format
    lines = (lists / "trainlist01.txt").read_bytes().split(b"\r\n")
    renamed = lists / "ucf_train_3cls.txt"
    renamed.write_bytes(b"\r\n".join(line for line in lines if b"HandstandPushups" not in line))
    assert detect_format(renamed) == "ucf101"
    said = []
    subset = read_list(renamed, index, report=said.append)
    assert subset == [entry for entry in official if "Handstand" not in entry[0]]
    assert said == ["ucf_train_3cls.txt: 4 videos of 2 classes (0 skipped)"]


def test_a_ucf101_list_saved_elsewhere_takes_its_class_index(ucf101, tmp_path):
    data, lists = ucf101
    index = load_index(data)
    # grep -v HandstandPushups trainlist01.txt > /elsewhere/mine.txt: no classInd.txt there
    mine = tmp_path / "elsewhere" / "mine.txt"
    mine.parent.mkdir()
    mine.write_bytes(b"".join(line + b"\n" for line in (lists / "trainlist01.txt").read_bytes(
        ).splitlines() if b"HandstandPushups" not in line))
    with pytest.raises(SplitError, match=re.escape(
            f"{mine}: its labels are numbers, and {mine.parent / 'classInd.txt'} (where their "
            "class names are looked for) is not there; give the list's class index with "
            "--class-index FILE")):
        read_list(mine, index)
    expected = [e for e in read_list(lists / "trainlist01.txt", index) if "Hand" not in e[0]]
    assert read_list(mine, index, class_index=lists / "classInd.txt") == expected
    result = invoke("train", "--data", data, "--train-list", mine, "--class-index",
                    lists / "classInd.txt", "--output", tmp_path / "run", *SMALL)
    assert result.exit_code == 0, result.output
    assert "mine.txt: 4 videos of 2 classes" in result.output
    test = mine.parent / "test.txt"  # a test list (no labels) needs no class index
    test.write_bytes((lists / "testlist01.txt").read_bytes())
    assert len(read_list(test, index, "test")) == 6


def test_a_list_through_a_pipe_is_read_once(ucf101, tmp_path):
    """`--list <(grep -v Biking testlist01.txt)`: the shell hands a pipe, readable once."""
    data, lists = ucf101
    raw = data.parent / "raw"
    read, write = os.pipe()
    os.write(write, b"".join(line + b"\r\n" for line in (lists / "testlist01.txt").read_bytes(
        ).splitlines() if b"Biking" not in line))
    os.close(write)
    try:
        result = invoke("encode", raw, tmp_path / "enc", "--size", "64x48", "--list",
                        f"/dev/fd/{read}")
    finally:
        os.close(read)
    assert result.exit_code == 0, result.output
    assert "encoded 4, already done 0, failed 0" in result.output


def test_labels_that_contradict_the_data_stop_with_the_cause(ucf101):
    data, lists = ucf101
    index = load_index(data)
    with pytest.raises(SplitError, match=r"trainlist01.txt:1: 'ApplyEyeMakeup/v_ApplyEyeMakeup"
                       r"_g08_c01' is labelled 'Biking' but the dataset's class for it is "
                       r"'ApplyEyeMakeup' \(6 of 6 entries disagree\); its labels look 1-based"):
        read_list(lists / "trainlist01.txt", index, list_format="generic")
    other = crlf(lists.parent / "other" / "classInd.txt",  # another numbering of the classes
                 [f"{n} {c}" for n, c in enumerate(reversed(UCF_CLASSES), 1)])
    (other.parent / "trainlist01.txt").write_bytes((lists / "trainlist01.txt").read_bytes())
    with pytest.raises(SplitError, match="4 of 6 entries disagree.*another classInd.txt"):
        read_list(other.parent / "trainlist01.txt", index)


def test_split_json_records_each_video_s_class(ucf101, tmp_path):
    data, lists = ucf101
    result = invoke("train", "--data", data, "--train-list", lists / "trainlist01.txt",
                    "--test-list", lists / "testlist01.txt", "--output", tmp_path / "run", *SMALL)
    assert result.exit_code == 0, result.output
    assert "trainlist01.txt: 6 videos of 3 classes (0 skipped)" in result.output
    assert "testlist01.txt: 6 videos of 3 classes (0 skipped)" in result.output
    assert json.loads((tmp_path / "run" / "test_metrics.json").read_text())["videos"] == 6
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert split["validation"] == [] and sorted(split["train"], key=str) == sorted(
        ({"id": video, "class": video.split("/")[0]} for video in load_index(data)["by_id"]
         if "_g08_" in video), key=str)


# --- HMDB-51 --------------------------------------------------------------------------------

HMDB = {  # class: clips, as HMDB-51 names them (some begin with '#')
    "clap": ["#20_Rhythm_clap_u_nm_np1_fr_goo_1.avi", "Applauding_clap_u_cm_np1_fr_med_0.avi",
             "Cheering_clap_f_nm_np1_ba_bad_2.avi"],
    "pick": ["#122_Cleaning_Up_The_Beach_In_Chiba__Japan_pick_f_nm_np1_le_bad_2.avi",
             "Berlin_pick_f_cm_np1_fr_goo_0.avi", "Garden_pick_u_nm_np1_ri_med_1.avi"],
}


@pytest.fixture(scope="module")
def hmdb51(tmp_path_factory):
    """HMDB-51's layout (<class>/<clip>.avi) and its testTrainMulti_7030_splits/ files."""
    root = tmp_path_factory.mktemp("hmdb51")
    data = extracted(root, [f"{c}/{clip}" for c, clips in HMDB.items() for clip in clips])
    splits = root / "testTrainMulti_7030_splits"
    for class_name, clips in HMDB.items():  # 1 = train, 2 = test, 0 = unused
        crlf(splits / f"{class_name}_test_split1.txt",
             [f"{clip} {code} " for clip, code in zip(clips, (1, 1, 2))])
    return data, splits


def test_hmdb51_clips_whose_names_begin_with_a_hash_are_kept(hmdb51):
    data, splits = hmdb51
    index = load_index(data)
    said = []
    train = read_list(splits, index, "train", report=said.append)
    assert sorted(video for video, _ in train) == sorted(
        f"{c}/{clip[:-4]}" for c, clips in HMDB.items() for clip in clips[:2])
    assert all(index["classes"][label] == video.split("/")[0] for video, label in train)
    assert said == ["testTrainMulti_7030_splits: 4 videos of 2 classes (0 skipped)"]
    test = read_list(splits / "clap_test_split1.txt", index, "test")  # split 1 of every class
    assert test == [(f"{c}/{clips[2][:-4]}", index["classes"].index(c))
                    for c, clips in HMDB.items()]


def test_hmdb51_trains_and_evaluates_from_its_split_files(hmdb51, tmp_path):
    data, splits = hmdb51
    result = invoke("train", "--data", data, "--train-list", splits, "--split", "1",
                    "--test-list", splits, "--output", tmp_path / "run", *SMALL)
    assert result.exit_code == 0, result.output
    assert "testTrainMulti_7030_splits: 4 videos of 2 classes (0 skipped)" in result.output
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert sorted(v["id"] for v in split["train"]) == sorted(
        f"{c}/{clip[:-4]}" for c, clips in HMDB.items() for clip in clips[:2])
    assert all(v["id"].startswith(v["class"] + "/") for v in split["train"])
    assert json.loads((tmp_path / "run" / "test_metrics.json").read_text())["videos"] == 2


def test_a_labels_file_keeps_names_that_begin_with_a_hash(hmdb51, tmp_path):
    from preprocess.store import read_labels
    labels = tmp_path / "labels.csv"
    labels.write_text("video,class\n#20_Rhythm_clap_u_nm_np1_fr_goo_1.avi,clap\n")
    assert read_labels(labels) == ({"#20_Rhythm_clap_u_nm_np1_fr_goo_1": "clap"}, {})


def test_a_resumed_run_names_a_video_that_left_its_dataset(ucf101, tmp_path):
    data, lists = ucf101
    run = tmp_path / "run"
    assert invoke("train", "--data", data, "--train-list", lists / "trainlist01.txt",
                  "--output", run, *SMALL).exit_code == 0
    split = json.loads((run / "split.json").read_text())
    gone = "Biking/v_Biking_g99_c01"  # as if deleted and the dataset extracted again
    split["train"].append({"id": gone, "class": "Biking"})
    (run / "split.json").write_text(json.dumps(split))
    result = invoke("train", "--output", run, "--resume", "--epochs", "2")
    assert result.exit_code == 1
    assert f"split.json: train video {gone!r} is no longer in {data}" in result.output
    split["train"][-1] = {"id": split["train"][0]["id"], "class": "Biking"}  # relabelled since
    (run / "split.json").write_text(json.dumps(split))
    result = invoke("train", "--output", run, "--resume", "--epochs", "2")
    assert result.exit_code == 1 and "is 'ApplyEyeMakeup' in" in result.output


def test_lists_saved_as_utf16_or_with_a_bom_read_as_utf8(ucf101, tmp_path):
    data, lists = ucf101
    index = load_index(data)
    official = read_list(lists / "trainlist01.txt", index)
    text = (lists / "trainlist01.txt").read_text()
    for encoding in ("utf-16", "utf-8-sig"):  # Windows "Unicode", and Notepad's UTF-8
        copy = lists / f"trainlist01-{encoding}.txt"
        copy.write_bytes(text.encode(encoding))
        assert read_list(copy, index) == official
    latin1 = lists / "latin1.txt"
    latin1.write_bytes(b"ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\nBiking/caf\xe9.avi 2\n")
    with pytest.raises(TeamnetError, match=r"latin1.txt:2: not UTF-8 text \(byte 56\); save"):
        read_list(latin1, index)


@pytest.mark.parametrize("name, content, problem", [
    ("classInd.txt", "1 ApplyEyeMakeup\n2\n", "classInd.txt:2: expected 'N ClassName', got '2'"),
    ("classInd.txt", "one ApplyEyeMakeup\n", "classInd.txt:1: expected 'N ClassName'"),
    ("trainlist01.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1 2\n",
     "trainlist01.txt:1: expected 'Class/clip.avi [N]'"),
    ("clap_test_split1.txt", "#20_Rhythm_clap_u_nm_np1_fr_goo_1.avi\n",
     "clap_test_split1.txt:1: expected 'clip.avi 0|1|2', got "
     "'#20_Rhythm_clap_u_nm_np1_fr_goo_1.avi'"),
])
def test_malformed_annotation_lines_are_named(ucf101, tmp_path, name, content, problem):
    data, lists = ucf101
    folder = tmp_path / "lists"
    folder.mkdir()
    (folder / "classInd.txt").write_bytes((lists / "classInd.txt").read_bytes())
    (folder / "trainlist01.txt").write_bytes((lists / "trainlist01.txt").read_bytes())
    (folder / name).write_text(content)
    listed = folder / ("clap_test_split1.txt" if "split" in name else "trainlist01.txt")
    with pytest.raises(SplitError, match=re.escape(problem)):
        read_list(listed, load_index(data), list_format="auto" if "split" in name else "ucf101")


def test_a_video_listed_twice_counts_once_and_never_with_two_classes(ucf101, tmp_path):
    data, lists = ucf101
    index = load_index(data)
    twice = tmp_path / "twice.txt"
    clip = "Biking/v_Biking_g09_c01.avi"
    twice.write_text(f"{clip}\nBiking/v_Biking_g09_c02.avi\n{clip}\n{clip} Biking\n")
    said = []
    assert read_list(twice, index, "test", "generic", report=said.append) == [
        ("Biking/v_Biking_g09_c01", 1), ("Biking/v_Biking_g09_c02", 1)]
    again = "'Biking/v_Biking_g09_c01' listed again (first at line 1)"
    assert said == ["twice.txt: 2 videos of 1 class (2 skipped)",
                    f"  skipped twice.txt:3: {again}", f"  skipped twice.txt:4: {again}"]
    twice.write_text(f"{clip} Biking\n{clip} ApplyEyeMakeup\n")
    with pytest.raises(SplitError, match="twice.txt:2: 'Biking/v_Biking_g09_c01' is labelled "
                       "'ApplyEyeMakeup'"):
        read_list(twice, index, list_format="generic")


def test_a_run_removes_the_checkpoints_a_killed_run_was_writing(ucf101, tmp_path):
    import socket
    import subprocess
    data, lists = ucf101
    process = subprocess.Popen(["true"])
    process.wait()
    run = tmp_path / "run"
    run.mkdir()
    left = run / f".last.pt.{socket.gethostname()}-{process.pid}.partial"
    left.write_bytes(b"x" * 1000)
    result = invoke("train", "--data", data, "--train-list", lists / "trainlist01.txt",
                    "--output", run, *SMALL)
    assert result.exit_code == 0, result.output
    assert not left.exists() and (run / "last.pt").exists()


# --- Kinetics -------------------------------------------------------------------------------

KINETICS_HEADER = "label,youtube_id,time_start,time_end,split"


def kinetics_row(label, clip, split):
    """An official CSV row for a clip named <youtube_id>_<start:06d>_<end:06d>; labels with
    commas are quoted, as in the official files."""
    label = f'"{label}"' if "," in label else label
    return f"{label},{clip[:-14]},{int(clip[-13:-7])},{int(clip[-6:])},{split}"

def test_kinetics_clips_of_one_youtube_video_stay_apart(tmp_path):
    # Kinetics-700 cuts several clips from one YouTube video, of one class or of several
    clips = {"abseiling/0347ZoDXyP0_000095_000105.mp4": "abseiling",
             "air drumming/0347ZoDXyP0_000200_000210.mp4": "air drumming",
             "abseiling/-3B32lodo2M_000059_000069.mp4": "abseiling"}
    data = extracted(tmp_path, list(clips))
    csv = crlf(tmp_path / "kinetics700" / "train.csv", [KINETICS_HEADER] + [
        kinetics_row(label, Path(clip).stem, "train") for clip, label in clips.items()])
    assert detect_format(csv) == "kinetics"
    index = load_index(data)
    entries = read_list(csv, index)
    assert entries == [(clip[:-4], index["classes"].index(label)) for clip, label in clips.items()]



def test_kinetics_as_downloaded_trains_and_evaluates(tmp_path):
    # the official tarballs' flat layout: classes only in the CSVs
    train = {"0347ZoDXyP0_000095_000105": "abseiling", "0347ZoDXyP0_000200_000210": "air drumming",
             "-3B32lodo2M_000059_000069": "abseiling", "Ab_cd-EF123_000010_000020": "air drumming",
             "zzzzzzzzzzz_000001_000011": "abseiling",  # never downloaded
             "one_frame__000000_000010": "air drumming"}  # a one-frame download
    val = {"5Gz9gUC5r1I_000030_000040": "abseiling", "xyz_xyz_xyz_000100_000110": "air drumming"}
    raw = tmp_path / "kinetics400"
    for n, clip in enumerate(train):
        (raw / "train").mkdir(parents=True, exist_ok=True)
        if clip.startswith("zzz"):
            continue
        frames = synthetic.pan(1 if clip.startswith("one") else 14, 48, 64, 1 + n % 3, 0, seed=n)
        if n == 3:  # a portrait phone clip, in VP9
            synthetic.write_video(raw / "train" / f"{clip}.webm",
                                  synthetic.pan(14, 64, 48, 0, 2, seed=n), codec="libvpx-vp9")
        else:
            synthetic.write_video(raw / "train" / f"{clip}.mp4", frames)
    write_clips(raw / "val", [f"{clip}.mp4" for clip in val])
    lists = tmp_path / "annotations"
    for name, clips, split in (("train.csv", train, "train"), ("validate.csv", val, "val")):
        crlf(lists / name, [KINETICS_HEADER] + [kinetics_row(label, clip, split)
                                                for clip, label in clips.items()])
    result = invoke("encode", raw, tmp_path / "enc", "--short-side", "48")
    assert result.exit_code == 0, result.output
    result = invoke("extract", tmp_path / "enc", tmp_path / "ext", "--labels",
                    lists / "train.csv", "--labels", lists / "validate.csv")
    assert result.exit_code == 0, result.output
    index = load_index(tmp_path / "ext")
    assert index["classes"] == ["abseiling", "air drumming"]
    labels = {**train, **val}
    assert {v["id"]: v["class"] for v in index["videos"]} == {
        f"{folder}/{clip}": labels[clip] for folder, clips in (("train", train), ("val", val))
        for clip in clips if not clip.startswith("zzz")}
    assert index["by_id"]["train/Ab_cd-EF123_000010_000020"]["width"] == 48  # portrait kept
    result = invoke("train", "--data", tmp_path / "ext", "--train-list", lists / "train.csv",
                    "--test-list", lists / "validate.csv", "--output", tmp_path / "run", *SMALL)
    assert result.exit_code == 0, result.output
    assert "train.csv: 5 videos of 2 classes (1 skipped)" in result.output
    assert "1 video(s) without a P-frame left out, such as 'train/one_frame__000000_000010'" \
        in result.output
    assert (tmp_path / "run" / "missing.txt").read_text() == "zzzzzzzzzzz_000001_000011\n"
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert sorted((v["id"], v["class"]) for v in split["train"]) == sorted(
        (f"train/{clip}", label) for clip, label in train.items()
        if not clip.startswith(("zzz", "one")))  # every training clip with its CSV class
    report = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    assert report["videos"] == 2


# --- Something-Something v2 ---------------------------------------------------------------

def test_something_something_v2_as_downloaded(tmp_path, monkeypatch):
    # all videos in one folder, <id>.webm; classes are the templates without brackets
    train = {"78687": "Holding [something] next to [something]",
             "42326": "Pushing [something] from left to right",
             "100904": "Holding [something] next to [something]",
             "2113": "Pushing [something] from right to left"}
    validation = {"1420": "Pushing [something] from left to right"}
    test = ["5", "77"]  # unlabelled
    raw = tmp_path / "20bn-something-something-v2"
    raw.mkdir()
    for n, video in enumerate([*train, *validation, *test]):
        frames = synthetic.pan(14, 48, 64, 1 + n % 2, 0, seed=n)
        synthetic.write_video(raw / f"{video}.webm", frames, codec="libvpx-vp9")
    files = tmp_path / "labels"
    files.mkdir()
    item = lambda video, template: {  # noqa: E731
        "id": video, "label": template.replace("[something]", "a cup"), "template": template,
        "placeholders": ["a cup", "a pen"]}
    for name, items in (("train", [item(v, t) for v, t in train.items()]),
                        ("validation", [item(v, t) for v, t in validation.items()]),
                        ("test", [{"id": video} for video in test])):
        (files / f"something-something-v2-{name}.json").write_text(json.dumps(items))
    assert detect_format(files / "something-something-v2-train.json") == "ssv2"
    assert invoke("encode", raw, tmp_path / "enc", "--short-side", "48").exit_code == 0
    result = invoke("extract", tmp_path / "enc", tmp_path / "ext",
                    "--labels", files / "something-something-v2-train.json",
                    "--labels", files / "something-something-v2-validation.json")
    assert result.exit_code == 0, result.output
    assert "2 video(s) that no labels file names were left out" in result.output
    index = load_index(tmp_path / "ext")
    assert index["classes"] == ["Holding something next to something",
                                "Pushing something from left to right",
                                "Pushing something from right to left"]
    said = []
    entries = read_list(files / "something-something-v2-train.json", index, report=said.append)
    assert [(video, index["classes"][label]) for video, label in entries] == [
        (video, template.replace("[", "").replace("]", "")) for video, template in train.items()]
    assert said == ["something-something-v2-train.json: 4 videos of 3 classes (0 skipped)"]
    assert read_flip_pairs("ssv2", index["classes"]) == {1: 2, 2: 1}  # left <-> right
    monkeypatch.chdir(tmp_path)  # the shipped pairs by name, away from the clone
    result = invoke("train", "--data", tmp_path / "ext", "--train-list",
                    files / "something-something-v2-train.json", "--test-list",
                    files / "something-something-v2-validation.json", "--flip-pairs", "ssv2",
                    "--output", tmp_path / "run", *SMALL)
    assert result.exit_code == 0, result.output
    assert "--flip-pairs ssv2: 1 of 3 pairs apply (the others name classes" in result.output
    assert json.loads((tmp_path / "run" / "test_metrics.json").read_text())["videos"] == 1
    broken = files / "broken.json"
    broken.write_text('[{"id": "78687", "template": 3}' + ", " * 10000 + "]")
    with pytest.raises(SplitError) as error:
        read_list(broken, index)
    assert len(str(error.value)) < 400  # never the whole one-line file


def test_encode_and_extract_only_what_a_list_names(ucf101, tmp_path):
    data, lists = ucf101
    raw = data.parent / "raw"
    chosen = lists / "testlist01.txt"  # the _g09_ clips, plus one that is not there
    (tmp_path / "mine.txt").write_bytes(chosen.read_bytes() + b"Biking/v_Biking_g77_c01.avi\r\n")
    result = invoke("encode", raw, tmp_path / "enc", "--size", "64x48", "--list",
                    tmp_path / "mine.txt")
    assert result.exit_code == 0, result.output
    assert "encoded 6, already done 0, failed 0" in result.output
    assert ("mine.txt: 1 listed video(s) are not in SRC, such as 'Biking/v_Biking_g77_c01' "
            "(line 7)") in result.output
    result = invoke("extract", tmp_path / "enc", tmp_path / "ext", "--list",
                    lists / "trainlist01.txt")  # none of them were encoded: said so
    assert result.exit_code == 0 and "6 listed video(s) are not in SRC" in result.output
    result = invoke("extract", tmp_path / "enc", tmp_path / "ext", "--list", chosen)
    assert result.exit_code == 0, result.output
    assert "extracted 6, already done 0, failed 0" in result.output
    assert sorted(load_index(tmp_path / "ext")["by_id"]) == sorted(
        line.removesuffix(".avi") for line in chosen.read_text().split())
    result = invoke("extract", tmp_path / "enc", tmp_path / "ext")  # a rerun, as encode says it
    assert "extracted 0, already done 6, failed 0" in result.output


def test_a_squashed_aspect_ratio_is_warned_about_naming_short_side(tmp_path):
    write_clips(tmp_path / "raw", ["walk/wide.mkv"])  # 64x48: 1.33
    synthetic.write_video(tmp_path / "raw" / "walk" / "portrait.mkv",
                          synthetic.pan(14, 64, 36, 0, 1))  # 36x64, a phone held upright
    result = invoke("encode", tmp_path / "raw", tmp_path / "enc", "--size", "64x48")
    assert result.exit_code == 0, result.output
    assert ("portrait.mkv: warning: --size 64x48 changes its display aspect ratio from 0.56 to "
            "1.33 (a portrait clip?); --short-side N keeps it") in result.output
    assert "wide.mkv: warning" not in result.output
    result = invoke("encode", tmp_path / "raw", tmp_path / "squat", "--size", "36x64")
    assert ("wide.mkv: warning: --size 36x64 changes its display aspect ratio from 1.33 to "
            "0.56; --short-side N keeps it") in result.output  # no portrait hint: it is not
    result = invoke("encode", tmp_path / "raw", tmp_path / "kept", "--short-side", "36")
    assert result.exit_code == 0 and "warning" not in result.output


def test_info_counts_each_class_and_warns_about_small_ones(ucf101):
    data, _ = ucf101
    result = invoke("info", data)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[lines.index("videos per class:") + 1:][:3] == [
        f"  {name:<16}  4" for name in UCF_CLASSES]
    assert "GOPs per video             min 2, median 2, max 2" in result.output
    assert "warning: 3 class(es) have fewer than 5 videos, such as 'ApplyEyeMakeup'" in \
        result.output
    assert "warning" not in invoke("info", data, "--few", "4").output
    totals = json.loads(invoke("info", data, "--json").output)
    assert totals["per_class"] == dict.fromkeys(UCF_CLASSES, 4)
    assert totals["without_p_frames"] == []


# --- one command per published number (benchmarks/reproduce/reproduce.py) -------------------

REPRODUCE = Path(__file__).parent.parent / "benchmarks" / "reproduce" / "reproduce.py"


def _reproduce(*args):
    return subprocess.run([sys.executable, str(REPRODUCE), *map(str, args)],
                          capture_output=True, text=True, timeout=900)


def test_every_published_number_is_a_valid_command_line(tmp_path):
    # each figure's teamnet commands, as its dry run prints them, parse: options the command
    # has, values its choices take (a typo would show only after days of earlier steps)
    figures = re.findall(r"\{(.*?)\}", _reproduce("--help").stdout.replace("\n", " "))[0]
    assert len(figures.split(",")) == 8 + 9  # pytorch-coviar's 8, the paper's Table 1's 9
    for figure in figures.split(","):
        done = _reproduce(figure, "--videos", "V", "--lists", "L", "--work", tmp_path,
                          "--kinetics-checkpoint", "K.pt", "--dry-run")
        assert done.returncode == 0, done.stderr
        for line in done.stdout.splitlines()[1:]:  # the first: what is published
            name, *args = shlex.split(line.removeprefix("$ "))[1:]
            command = main.commands[name]
            params = {opt: p for p in command.params for opt in p.opts + p.secondary_opts}
            for option, value in zip(args, args[1:] + [""]):
                if option.startswith("--"):
                    assert option in params, (figure, name, option)
                    choices = getattr(params[option].type, "choices", None)
                    assert not choices or value in map(str, choices), (figure, option, value)


@pytest.mark.slow
def test_the_mv_only_coviar_figure_runs_from_the_official_download(ucf101, tmp_path):
    data, lists = ucf101
    done = _reproduce("coviar-ucf101-mv", "--videos", data.parent / "raw", "--lists", lists,
                      "--work", tmp_path, "--splits", "1", "--workers", "2",
                      "--train-options", " ".join(SMALL[:-4] + ["--epochs", "2"]),
                      "--test-options", "--num-segments 2 --workers 0")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((tmp_path / "coviar-ucf101-mv.json").read_text())
    assert result["expected_top1"] == 0.70 and result["splits"] == [1]
    assert len(result["top1"]) == 1 and 0 <= result["mean_top1"] <= 1
    run = tmp_path / "runs" / "coviar-ucf101-mv-coviar-mv-split1"
    config = json.loads((run / "config.json").read_text())
    assert (config["optim"]["recipe"], config["model"]["modality"], config["data"]["augment"],
            config["optim"]["epochs"], config["data"]["val_fraction"]) == (
        "coviar-ucf101", "mv", "coviar", 2, 0.0)  # the preset, but what was typed
    about = json.loads(str(np.load(tmp_path / "scores" / f"{run.name}.npz")["about"]))
    assert (about["view"], about["crops"], about["num_segments"]) == ("coviar", 10, 2)
    assert "published 70.0%" in done.stdout
    again = _reproduce("coviar-ucf101-mv", "--videos", data.parent / "raw", "--lists", lists,
                       "--work", tmp_path, "--splits", "1", "--dry-run")
    assert "--resume" in again.stdout  # a second run continues the first
