"""`radtl data import`: a user's collection (CSV, class folders or given split lists) becomes a
TFDS dataset with patient-grouped folds that the rest of radtl opens like a built-in one."""
import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

import radtl.data
from cli_testing import TINY
from radtl import cli
from radtl import imaging
from radtl import importing
from radtl.config import ConfigError
from radtl.config import TrainConfig
from tfds_builders.imported import import_record

SIZE = 24
# Half of the non-test patients as validation candidates (n_val = 2): the tiny collections
# have 4-8 patients of the minority class.
VAL = 0.45


def _image(label: str, patient: int, index: int) -> Image.Image:
    """A small greyscale image whose brightness depends on the class (learnable at 32 px)."""
    rng = np.random.default_rng(patient * 10 + index)
    base = 170 if label == "malignant" else 60
    pixels = np.clip(rng.normal(base, 25, (SIZE, SIZE)), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "L")


def _patients(n=24):
    """(patient id, label, number of images): every third patient malignant (1:2), 1-4 images each."""
    return [(f"P{p:03d}", "malignant" if p % 3 == 0 else "benign", 1 + p % 4) for p in range(n)]


def write_csv_collection(root: Path, n=24) -> Path:
    """images/P007_2.png ... and labels.csv (path,label,patient)."""
    (root / "images").mkdir(parents=True)
    rows = []
    for patient, label, count in _patients(n):
        for i in range(count):
            name = f"images/{patient}_{i}.png"
            _image(label, int(patient[1:]), i).save(root / name)
            rows.append({"path": name, "label": label, "patient": patient})
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    return root / "labels.csv"


def write_folder_collection(root: Path, n=24) -> Path:
    """<root>/<class>/P007_2.png."""
    for patient, label, count in _patients(n):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            _image(label, int(patient[1:]), i).save(root / label / f"{patient}_{i}.png")
    return root


def listing(path: Path, hidden=True) -> list:
    return sorted(p.name for p in path.iterdir() if hidden or not p.name.startswith(".")) if path.exists() else []


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """One CSV import with 3 folds, shared by the read-only tests."""
    source = tmp_path_factory.mktemp("collection")
    csv = write_csv_collection(source)
    data_dir = tmp_path_factory.mktemp("tfds")
    record = importing.import_dataset("thyroid_test", csv=csv, image_root=source, group_col="patient", folds=3,
                                      val_fraction=VAL, seed=0, data_dir=data_dir)
    return record, data_dir, source


def test_import_builds_every_fold_that_radtl_opens_like_a_builtin(imported):
    record, data_dir, source = imported
    assert listing(data_dir) == ["thyroid_test"]  # the hidden working folder is gone
    assert listing(data_dir / "thyroid_test", hidden=False) == ["fold1", "fold2", "fold3", "import.json", "splits"]
    assert record.class_names == ["benign", "malignant"] and record.num_folds == 3
    assert record.images == sum(c for _, _, c in _patients()) and record.groups == 24
    assert record.conversion["counts"] == {"8-bit": record.images}
    assert radtl.data.names(data_dir)[-1] == "thyroid_test"
    test_files = []
    for k in (1, 2, 3):
        fold = radtl.data.open("thyroid_test", k, data_dir)
        assert fold.class_names == ["benign", "malignant"]
        assert sum(fold.split_sizes.values()) == record.images
        groups = {}
        for split in ("train", "val", "test"):
            filenames, labels = fold.labels(split)
            assert set(labels.tolist()) == {0, 1}, (k, split)  # every class in every split
            groups[split] = {Path(f).stem.split("_")[0] for f in filenames}
            if split == "test":
                test_files += filenames
        assert not (groups["train"] & groups["val"] or groups["train"] & groups["test"]
                    or groups["val"] & groups["test"])
        # membership is exactly the written split list
        listed = pd.read_csv(data_dir / "thyroid_test" / "splits" / f"test_fold{k}.csv")
        assert sorted(listed["filename"]) == sorted(fold.labels("test")[0])
        assert list(listed.columns) == ["filename", "label", "group"]
    assert sorted(test_files) == sorted(pd.read_csv(source / "labels.csv")["path"])  # a partition
    # stored pixels: the 8-bit greyscale file replicated to RGB, and the patient as exam_id
    fold = radtl.data.open("thyroid_test", 1, data_dir)
    images, labels, extras = next(iter(fold.load("test", image_size=SIZE, batch_size=2, with_metadata=True)))
    name = extras["filename"][0].numpy().decode()
    expected = np.asarray(Image.open(source / name).convert("RGB"), dtype=np.float32)
    np.testing.assert_array_equal(images[0].numpy(), expected)
    assert extras["exam_id"][0].numpy().decode() == Path(name).stem.split("_")[0]
    assert fold.builder.info.metadata["split"]["method"] == "stratified-group-kfold"


def test_the_record_hashes_the_split_lists_and_a_rebuild_reproduces_a_fold(imported, tmp_path):
    record, data_dir, _ = imported
    directory = data_dir / "thyroid_test"
    for name, digest in record.split_files.items():
        assert import_record.file_sha256(directory / "splits" / name) == digest
    assert json.loads((directory / "import.json").read_text())["split_files"] == record.split_files
    # a copy of the import with fold2 deleted is rebuilt from its split lists
    copy_root = tmp_path / "copy"
    import shutil

    shutil.copytree(directory, copy_root / "thyroid_test")
    shutil.rmtree(copy_root / "thyroid_test" / "fold2")
    with pytest.raises(radtl.data.DatasetNotBuiltError, match="radtl data build thyroid_test --fold 2"):
        radtl.data.open("thyroid_test", 2, copy_root)
    radtl.data.build("thyroid_test", 2, data_dir=copy_root)
    assert radtl.data.open("thyroid_test", 2, copy_root).labels("test")[0] == \
        radtl.data.open("thyroid_test", 2, data_dir).labels("test")[0]
    # an edited split list is refused at rebuild, and the failed build leaves no fold folder
    shutil.rmtree(copy_root / "thyroid_test" / "fold2")
    with open(copy_root / "thyroid_test" / "splits" / "val_fold2.csv", "a") as f:
        f.write("images/extra.png,benign,P999\n")
    with pytest.raises(radtl.data.DatasetBuildError, match=r"val_fold2.csv \(edited since the import\)"):
        radtl.data.build("thyroid_test", 2, data_dir=copy_root)
    assert not (copy_root / "thyroid_test" / "fold2").exists()


def test_configs_accept_imported_names_and_their_folds(imported):
    _, data_dir, _ = imported
    config = TrainConfig.from_dict({"dataset": "thyroid_test", "fold": 3, "data_dir": str(data_dir)})
    assert config.dataset == "thyroid_test"
    with pytest.raises(ConfigError, match=r"`fold` must be one of 1..3 \(thyroid_test has 3 folds\)"):
        TrainConfig.from_dict({"dataset": "thyroid_test", "fold": 4, "data_dir": str(data_dir)})
    with pytest.raises(ConfigError, match=r"imported into .*\['thyroid_test'\].*Did you mean 'thyroid_test'.*"
                                          r"radtl data import thyroid_tset"):
        TrainConfig.from_dict({"dataset": "thyroid_tset", "data_dir": str(data_dir)})


def test_folders_with_a_group_regex_are_deterministic_per_seed(tmp_path):
    root = write_folder_collection(tmp_path / "folders")
    data_dir = tmp_path / "tfds"
    kwargs = dict(folders=root, group_regex=r"^(?P<group>P\d+)_", folds=2, val_fraction=VAL, data_dir=data_dir)
    first = importing.import_dataset("knee_a", seed=3, **kwargs)
    again = importing.import_dataset("knee_b", seed=3, **kwargs)
    other = importing.import_dataset("knee_c", seed=4, **kwargs)
    assert first.groups == 24 and first.source["kind"] == "folders"
    assert first.split_files == again.split_files  # identical split lists, byte for byte
    assert first.split_files != other.split_files
    test = pd.read_csv(data_dir / "knee_a" / "splits" / "test_fold1.csv")
    assert test["filename"].iloc[0].split("/")[0] in ("benign", "malignant")
    assert (test["group"] == test["filename"].str.extract(r"/(P\d+)_")[0]).all()


def test_given_split_lists_are_used_verbatim(tmp_path):
    source = tmp_path / "breast"
    write_csv_collection(source)
    table = pd.read_csv(source / "labels.csv")
    lists = source / "dataframe"
    lists.mkdir()
    patients = sorted(table["patient"].unique())
    given = {}
    for k, test_patients in ((1, patients[:8]), (2, patients[8:16])):
        val_patients = patients[16:20] if k == 1 else patients[:4]
        for split, members in (("test", test_patients), ("val", val_patients)):
            given[split, k] = table[table["patient"].isin(members)]
        given["train", k] = table[~table["patient"].isin(list(test_patients) + list(val_patients))]
        for split in ("train", "val", "test"):
            rows = given[split, k].rename(columns={"path": "filename"})[["filename", "label"]]
            rows.to_csv(lists / f"breast_{split}_fold{k}.csv", index=False)
    data_dir = tmp_path / "tfds"
    record = importing.import_dataset("breast_given", splits_dir=lists, image_root=source,
                                      group_regex=r"^(P\d+)_", data_dir=data_dir)
    assert record.num_folds == 2 and record.split["method"] == "given"
    for (split, k), rows in given.items():
        stored = radtl.data.open("breast_given", k, data_dir).labels(split)[0]
        assert sorted(stored) == sorted(rows["path"]), (split, k)


def test_16_bit_png_and_dicom_files_are_converted_and_counted(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import FileDataset
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian
    from pydicom.uid import generate_uid

    root = write_folder_collection(tmp_path / "mixed", n=12)
    ramp = (np.arange(SIZE * SIZE, dtype=np.uint16).reshape(SIZE, SIZE) * 7)
    Image.fromarray(ramp, "I;16").save(root / "benign" / "P100_0.png")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(root / "malignant" / "P101_0.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.Rows = ds.Columns = SIZE
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = 1000, 1000
    ds.PixelData = (ramp % 4096).tobytes()
    ds.save_as(root / "malignant" / "P101_0.dcm", enforce_file_format=True)

    data_dir = tmp_path / "tfds"
    record = importing.import_dataset("mixed", folders=root, group_regex=r"^(P\d+)_", folds=2, val_fraction=VAL,
                                      data_dir=data_dir)
    assert record.conversion["counts"] == {"8-bit": record.images - 2, "dicom-window": 1, "percentile-window": 1}
    for name in ("benign/P100_0.png", "malignant/P101_0.dcm"):
        expected, _ = imaging.read_image(root / name)
        fold = next(k for k in (1, 2) if name in radtl.data.open("mixed", k, data_dir).labels("test")[0])
        ds_test = radtl.data.open("mixed", fold, data_dir).load("test", image_size=SIZE, batch_size=64,
                                                                  with_metadata=True)
        images, _, extras = next(iter(ds_test))
        index = [f.decode() for f in extras["filename"].numpy()].index(name)
        np.testing.assert_array_equal(images[index].numpy(), expected.astype(np.float32))


@pytest.mark.parametrize("case, fragment", [
    ("missing", "1 listed image(s) do not exist"),
    ("unreadable", "1 image(s) cannot be read"),
    ("duplicate", "twice, on lines"),
    ("unknown_label", "label value(s) are not among --classes"),
    ("too_few_groups", "fewer"),
    ("empty_cell", "line 3"),
    ("empty_folder", "hold no image"),
    ("exists", "an import never overwrites"),
    ("bad_name", "lower case letters"),
    ("escaping_path", "is not a path inside the image root"),
    ("same_file_twice", "lists 'images/P001_0.png' twice, on lines 3 and 32"),
])
def test_bad_input_is_one_clear_error_and_nothing_is_written(tmp_path, case, fragment):
    source = tmp_path / "src"
    csv = write_csv_collection(source, n=12)
    table = pd.read_csv(csv)
    data_dir = tmp_path / "tfds"
    data_dir.mkdir()
    kwargs = dict(csv=csv, image_root=source, group_col="patient", folds=2, val_fraction=VAL, data_dir=data_dir)
    name = "study"
    if case == "missing":
        os.remove(source / table["path"][3])
    elif case == "unreadable":
        (source / table["path"][3]).write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    elif case == "duplicate":
        pd.concat([table, table.iloc[[2]]]).to_csv(csv, index=False)
    elif case == "unknown_label":
        table.loc[4, "label"] = "maligant"
        table.to_csv(csv, index=False)
        kwargs["classes"] = ["benign", "malignant"]
    elif case == "too_few_groups":
        kwargs["folds"] = 6  # 4 malignant patients
    elif case == "empty_cell":
        table["label"] = table["label"].astype(object)
        table.loc[1, "label"] = ""
        table.to_csv(csv, index=False)
    elif case == "empty_folder":
        folders = write_folder_collection(tmp_path / "folders", n=12)
        (folders / "normal").mkdir()
        kwargs = dict(folders=folders, folds=2, val_fraction=VAL, data_dir=data_dir)
    elif case == "exists":
        (data_dir / name).mkdir()
    elif case == "bad_name":
        name = "My Study"
    elif case == "escaping_path":
        table.loc[2, "path"] = "../src/" + table["path"][2]
        table.to_csv(csv, index=False)
    elif case == "same_file_twice":  # the same file under two spellings
        extra = table.iloc[[1]].assign(path="./images\\P001_0.png")
        pd.concat([table, extra]).to_csv(csv, index=False)
    before = listing(data_dir)
    with pytest.raises(importing.DatasetImportError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        importing.import_dataset(name, **kwargs)
    assert listing(data_dir) == before


def test_an_interrupted_import_leaves_nothing(tmp_path, monkeypatch):
    source = tmp_path / "src"
    csv = write_csv_collection(source, n=12)
    data_dir = tmp_path / "tfds"
    calls = []

    def interrupted(stage, done, total):
        calls.append(stage)
        if stage == "build fold 2":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        importing.import_dataset("study", csv=csv, image_root=source, group_col="patient", folds=2,
                                 val_fraction=VAL, data_dir=data_dir, progress=interrupted)
    assert "build fold 1" in calls and listing(data_dir) == []


def test_groups_with_mixed_labels_are_a_counted_warning(tmp_path, caplog):
    source = tmp_path / "src"
    csv = write_csv_collection(source, n=12)
    table = pd.read_csv(csv)
    two_images = table[table["patient"] == "P001"].index  # P001: 2 benign images
    table.loc[two_images[0], "label"] = "malignant"
    table.to_csv(csv, index=False)
    with caplog.at_level(logging.WARNING, logger="radtl.importing"):
        record = importing.import_dataset("study", csv=csv, image_root=source, group_col="patient", folds=2,
                                          val_fraction=VAL, data_dir=tmp_path / "tfds")
    assert record.mixed_label_groups == 1
    assert "1 group(s) have images with different labels" in caplog.text and "P001" in caplog.text


def test_cli_import_then_train_on_it(tmp_path):
    source = tmp_path / "src"
    csv = write_csv_collection(source, n=18)
    data_dir = tmp_path / "tfds"
    runner = CliRunner()
    result = runner.invoke(cli.cli, ["data", "import", "tiny_us", "--csv", str(csv), "--image-root", str(source),
                                     "--group-col", "patient", "--folds", "2", "--val-fraction", str(VAL),
                                     "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert "Imported tiny_us:" in result.output and "checked" in result.output
    listed = runner.invoke(cli.cli, ["data", "list", "--data-dir", str(data_dir)])
    assert "tiny_us" in listed.output and "2 folds" in listed.output
    info = runner.invoke(cli.cli, ["data", "info", "tiny_us", "--fold", "2", "--data-dir", str(data_dir)])
    assert info.exit_code == 0 and "tiny_us/fold2" in info.output, info.output
    options = [o for o in TINY]
    options[options.index("--dataset") + 1] = "tiny_us"
    trained = runner.invoke(cli.cli, ["train", *options, "--fold", "2", "--data-dir", str(data_dir),
                                      "--batch-size", "8", "--out", str(tmp_path / "run")])
    assert trained.exit_code == 0, trained.output
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["config"]["dataset"] == "tiny_us" and config["config"]["fold"] == 2
    predictions = pd.read_csv(tmp_path / "run" / "predictions_test.csv")
    test_list = pd.read_csv(data_dir / "tiny_us" / "splits" / "test_fold2.csv")
    assert sorted(predictions["filename"]) == sorted(test_list["filename"])
    resolved = config["resolved"]["data"]
    assert resolved["data_dir"] == str(data_dir) and resolved["name"] == "tiny_us"
    assert resolved["import"]["split_files"] == import_record.read(data_dir / "tiny_us").split_files
    # the run predicts where its dataset is not (a config read back from a run skips that check)
    moved = data_dir.rename(tmp_path / "elsewhere")
    Image.new("L", (30, 30), 200).save(tmp_path / "new.png")
    predicted = runner.invoke(cli.cli, ["predict", str(tmp_path / "run"), str(tmp_path / "new.png")])
    assert predicted.exit_code == 0 and "new.png" in predicted.output, predicted.output
    # a 16-bit file is windowed with the import's percentiles, recorded in the run
    assert resolved["import"]["percentiles"] == [0.5, 99.5]
    ramp = np.arange(40 * 40, dtype=np.uint16).reshape(40, 40) * 30
    Image.fromarray(ramp, "I;16").save(tmp_path / "ramp16.png")

    def predicted_probability():
        out = runner.invoke(cli.cli, ["predict", str(tmp_path / "run"), str(tmp_path / "ramp16.png"),
                                      "--output", str(tmp_path / "p.csv")])
        assert out.exit_code == 0, out.output
        return pd.read_csv(tmp_path / "p.csv")["prob_malignant"][0]

    default = predicted_probability()
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    record["resolved"]["data"]["import"]["percentiles"] = [40, 60]
    (tmp_path / "run" / "config.json").write_text(json.dumps(record))
    assert predicted_probability() != default
    evaluated = runner.invoke(cli.cli, ["evaluate", str(tmp_path / "run")])
    assert evaluated.exit_code == 1 and "Error: `dataset` must be a registered dataset" in evaluated.output
    data_dir = moved.rename(data_dir)
    again = runner.invoke(cli.cli, ["data", "import", "tiny_us", "--csv", str(csv), "--image-root", str(source),
                                    "--data-dir", str(data_dir)])
    assert again.exit_code == 1 and again.output.count("Error:") == 1 and "never overwrites" in again.output


def test_a_three_class_import_trains_and_a_sweep_takes_it_by_name(tmp_path):
    root = tmp_path / "knee"
    brightness = {"normal": 40, "acl": 130, "meniscus": 220}
    for p in range(18):
        label = list(brightness)[p % 3]
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(1 + p % 2):
            pixels = np.full((SIZE, SIZE), brightness[label], np.uint8) + np.uint8(i)
            Image.fromarray(pixels, "L").save(root / label / f"{p:04d}_sagittal_{i}.png")
    data_dir = tmp_path / "tfds"
    runner = CliRunner()
    result = runner.invoke(cli.cli, ["data", "import", "knee3", "--folders", str(root), "--group-regex",
                                     r"^(\d{4})_sagittal", "--classes", "normal,acl,meniscus", "--folds", "2",
                                     "--val-fraction", str(VAL), "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert radtl.data.open("knee3", 1, data_dir).class_names == ["normal", "acl", "meniscus"]
    options = [o for o in TINY]
    options[options.index("--dataset") + 1] = "knee3"
    trained = runner.invoke(cli.cli, ["train", *options, "--data-dir", str(data_dir), "--batch-size", "8",
                                      "--out", str(tmp_path / "run")])
    assert trained.exit_code == 0, trained.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"]["task"] == "multiclass"
    columns = pd.read_csv(tmp_path / "run" / "predictions_test.csv").columns
    assert [c for c in columns if c.startswith("prob_")] == ["prob_normal", "prob_acl", "prob_meniscus"]
    sweep_file = tmp_path / "knee3.yaml"
    sweep_file.write_text(f"base: {{dataset: knee3, data_dir: {data_dir}, backbone: vgg16, weights: none}}\n"
                          "grid: {fold: [1, 2, 3]}\n")
    refused = runner.invoke(cli.cli, ["sweep", str(sweep_file), "--dry-run"])
    assert refused.exit_code == 1 and "knee3 has 2 folds" in refused.output, refused.output
    sweep_file.write_text(sweep_file.read_text().replace("[1, 2, 3]", "[1, 2]"))
    planned = runner.invoke(cli.cli, ["sweep", str(sweep_file), "--dry-run", "--runs-dir", str(tmp_path / "runs")])
    assert planned.exit_code == 0 and "knee3" in planned.output, planned.output


def test_without_groups_each_file_is_its_own_group_even_with_repeated_stems(tmp_path):
    root = tmp_path / "folders"
    for label in ("benign", "malignant"):
        for patient in range(4):
            (root / label / f"P{patient}").mkdir(parents=True)
            for i in range(2):
                _image(label, patient, i).save(root / label / f"P{patient}" / f"{i}.png")
    (root / "benign" / "notes.txt").write_text("not an image")
    record = importing.import_dataset("stems", folders=root, folds=2, val_fraction=VAL, data_dir=tmp_path / "tfds")
    assert record.images == 16 and record.groups == 16 and record.mixed_label_groups == 0


def test_cli_errors_for_a_fold_the_dataset_lacks_are_one_line(imported):
    _, data_dir, _ = imported
    for command in (["data", "build", "thyroid_test", "--fold", "4"], ["data", "info", "thyroid_test", "--fold", "4"]):
        result = CliRunner().invoke(cli.cli, [*command, "--data-dir", str(data_dir)])
        assert result.exit_code == 1 and result.output.strip().splitlines() == [
            "Error: `fold` must be one of 1..3 (thyroid_test has 3 folds). Received: fold=4"], result.output


def test_csv_columns_are_detected_like_split_lists(tmp_path):
    source = tmp_path / "src"
    csv = write_csv_collection(source, n=6)
    table = pd.read_csv(csv).rename(columns={"path": "filename", "label": "acl_label"})
    table.to_csv(csv, index=False)
    items, given = importing.collect_items(importing.ImportOptions(csv=str(csv), image_root=str(source),
                                                                   group_col="patient"))
    assert given is None and len(items) == len(table)
    assert items[0].filename == "images/P000_0.png" and items[0].label == "malignant" and items[0].group == "P000"
