"""Step 01 on a Kinetics download as it comes: annotation CSVs, videos flat or in class folders;
rows without a file and files without a row are listed apart, and the counts reconcile."""
import pytest

from conftest import load_script
from soundtrack import datafiles

step01 = load_script("01_make_file_lists")
HEADER = "label,youtube_id,time_start,time_end,split,is_cc"


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")          # step 01 only lists files; later steps decode them


@pytest.fixture
def download(tmp_path):
    root = tmp_path / "k"
    (tmp_path / "train.csv").write_text("\n".join([
        HEADER,
        "abseiling,aaa,10,20,train,0",
        '"air drumming",bbb,0,10,train,0',
        "air drumming,ccc,5,15,train,0",           # not downloaded
        "zumba,ddd,100,110,train,0"]) + "\n")
    (tmp_path / "validate.csv").write_text("\n".join([
        HEADER, "abseiling,eee,1,11,validate,0", "zumba,fff,2,12,validate,0"]) + "\n")
    touch(root / "train" / "aaa_000010_000020.mp4")                 # flat
    touch(root / "train" / "air_drumming" / "bbb_000000_000010.mp4")  # in a class folder
    touch(root / "train" / "ddd_000100_000110.webm")
    touch(root / "train" / "stray_000001_000002.mp4")               # no row names it
    touch(root / "val" / "eee_000001_000011.mp4")
    touch(root / "val" / "zumba" / "fff_000002_000012.mkv")
    return tmp_path, root


def test_annotation_csvs_give_classes_labels_and_what_is_missing(download, capsys):
    tmp, root = download
    common = ["--dataset", "k", "--video-root", str(root), "--output-root", str(tmp)]
    step01.main(common + ["--annotations", str(tmp / "train.csv"), str(tmp / "validate.csv")])
    lists = tmp / "file_lists" / "k"
    assert datafiles.read_classes(lists / "classes.txt") == ["abseiling", "air drumming", "zumba"]
    ids, labels = datafiles.read_video_list(lists / "train_videos.txt")
    assert ids == ["train/aaa_000010_000020", "train/air_drumming/bbb_000000_000010",
                   "train/ddd_000100_000110"]
    assert list(labels) == [0, 1, 2]
    missing = datafiles.read_reasons(lists / "train_missing.txt")
    assert list(missing) == ["ccc_000005_000015"] and "no file" in missing["ccc_000005_000015"]
    unlisted = datafiles.read_reasons(lists / "train_unlisted.txt")
    assert unlisted == {"train/stray_000001_000002.mp4": "no annotation row names it"}
    ids, labels = datafiles.read_video_list(lists / "val_videos.txt")
    assert ids == ["val/eee_000001_000011", "val/zumba/fff_000002_000012"]
    assert list(labels) == [0, 2]
    out = capsys.readouterr().out
    assert "[01] train: 4 annotation rows = 3 videos found + 1 missing" in out
    assert "1 files on disk that no row names" in out


def test_a_split_the_csvs_lack_or_a_bad_csv_is_one_clear_line(download):
    tmp, root = download
    common = ["--dataset", "k", "--video-root", str(root), "--output-root", str(tmp)]
    with pytest.raises(SystemExit) as e:
        step01.main(common + ["--annotations", str(tmp / "validate.csv")])
    assert e.value.code == 2
    (tmp / "bad.csv").write_text("name,id\nx,y\n")
    with pytest.raises(SystemExit) as e:
        step01.main(common + ["--annotations", str(tmp / "bad.csv")])
    assert e.value.code == 2


def test_without_annotations_the_folders_decide_as_before(download):
    tmp, root = download
    common = ["--dataset", "k", "--video-root", str(root), "--output-root", str(tmp)]
    step01.main(common + ["--splits", "train"])
    classes = datafiles.read_classes(tmp / "file_lists" / "k" / "classes.txt")
    assert classes == ["air_drumming"]                 # folder names; flat files unlabelled
    with pytest.raises(SystemExit, match="val has class folders that train lacks: zumba"):
        step01.main(common)
