"""What predict's results file may touch: only a file that is, line for line, one it wrote;
whole lines on a full disk."""
import json

import pytest

from disks import fill, small_disk
from preprocess.errors import SettingsError
from teamnet.results import ResultFile, ResultsNotWritten

IDENTITY = {"checkpoint": "/runs/a/best.pt", "checkpoint_sha256": "0" * 64, "num_segments": 25,
            "crops": 1, "top_k": 5, "input_size": 224, "window": None}
HEADER = json.dumps({"teamnet_predict": IDENTITY}).encode() + b"\n"
RESULT = b'{"video": "a.mp4", "top": [{"class": "walk", "probability": 1.0}]}\n'


@pytest.mark.parametrize("content", [
    b'{"annotations": [{"id": "1", "label": "pushing"}]}',  # json.dump: no final newline
    b"notes: keep these\nsecond line, no newline",
    b"notes.txt\n",
    HEADER + RESULT + b"someone's note, no newline",  # a tail that is not a torn result
    HEADER + b"[1, 2]\n",
    json.dumps({"teamnet_predict": "not a header"}).encode() + b"\n",
])
def test_a_file_that_is_not_a_results_file_is_refused_untouched(tmp_path, content):
    path = tmp_path / "out.jsonl"
    path.write_bytes(content)
    with pytest.raises(SettingsError, match=r"out\.jsonl:\d+: not a line .* left untouched"):
        with ResultFile(path, IDENTITY):
            pass
    assert path.read_bytes() == content


def test_a_results_file_torn_by_a_kill_is_repaired_and_appended_to(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_bytes(HEADER + RESULT + b'{"video": "b.mp4", "to')
    with ResultFile(path, IDENTITY) as results:
        assert list(results.done) == ["a.mp4"]
        results.write({"top": [], "video": "c.mp4"})
    assert path.read_bytes() == HEADER + RESULT + b'{"video": "c.mp4", "top": []}\n'
    empty = tmp_path / "touched.jsonl"  # an empty file holds nothing to lose
    empty.touch()
    with ResultFile(empty, IDENTITY):
        pass
    assert empty.read_bytes() == HEADER


def test_a_full_disk_stops_results_at_a_whole_line_and_a_rerun_repairs_there(tmp_path):
    with small_disk(tmp_path / "disk", "64k") as disk:
        path = disk / "out.jsonl"
        with ResultFile(path, IDENTITY) as results:
            results.write({"video": "a.mp4", "top": []})
            kept = path.read_bytes()
            fill(disk)
            with pytest.raises(ResultsNotWritten, match=(
                    r"could not write to .*out\.jsonl: no space left on device; the 1 "
                    r"result\(s\) before 'b+' are kept in it\. Make room \(at least "
                    r"20,0\d\d bytes\), then rerun")):
                results.write({"video": "b" * 20000, "top": []})
        assert path.read_bytes() == kept  # no torn line
        with open(path, "ab") as file:  # a torn line left by a kill, the disk still full
            file.write(b'{"video": "c')
        with ResultFile(path, IDENTITY) as results:  # repaired in place: needs no room
            assert list(results.done) == ["a.mp4"]
        assert path.read_bytes() == kept
