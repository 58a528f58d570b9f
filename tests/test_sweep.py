"""Tests for radtl.sweep: YAML expansion and validation, sharding, skip/resume, shipped configs.

No training: runs go through `FakeTrainer`, an injected runner that writes the
run-directory contract (`config.json` first, `metrics.json` last) as `radtl.train.run`
does, and refuses to overwrite or to resume with another config, as it does.
"""
import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from radtl import sweep
from radtl.config import TrainConfig
from radtl.rundir import RunDir

RUN_FILES = RunDir.FILES

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SHIPPED = sorted(CONFIGS.glob("*.yaml"))

# A sweep that sets no registry field, so it validates without importing Keras.
LIGHT = {"name": "light", "base": {"epochs": 1, "image_size": 32}, "grid": {"seed": [0, 1, 2, 3, 4]}}


class FakeTrainer:
    """Runner standing in for `radtl.train.run`: writes the contract files, trains nothing.

    Args:
        stop_at: int or None. On this call (1-based), raise `stop_with` after writing
            config.json, like a kill in the middle of training.
        stop_with: the exception raised at `stop_at`.
        fail: run names whose call raises ValueError after writing config.json.
        write_metrics: False to return without writing metrics.json.
    """

    def __init__(self, stop_at=None, stop_with=KeyboardInterrupt, fail=(), write_metrics=True):
        self.stop_at, self.stop_with, self.fail = stop_at, stop_with, set(fail)
        self.write_metrics = write_metrics
        self.calls = []

    def __call__(self, config, run_dir, *, resume=False):
        run_dir = Path(run_dir)
        self.calls.append((run_dir.name, resume))
        if resume:
            if RunDir(run_dir).read_config() != config:
                raise ValueError(f"{run_dir}: config differs from the recorded one")
        else:
            if run_dir.exists():
                raise FileExistsError(f"{run_dir} exists; pass resume=True")
            run_dir.mkdir(parents=True)
            (run_dir / RUN_FILES["config"]).write_text(json.dumps({"config": config.to_dict(), "resolved": {}}))
        if len(self.calls) == self.stop_at:
            raise self.stop_with()
        if run_dir.name in self.fail:
            raise ValueError(f"boom in {run_dir.name}")
        if self.write_metrics:
            (run_dir / RUN_FILES["metrics"]).write_text(json.dumps({"best_epoch": 0}))
        return {"best_epoch": 0}


def write_yaml(path, text):
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def light_yaml(tmp_path):
    return write_yaml(tmp_path / "light.yaml", """\
        name: light
        base: {epochs: 1, image_size: 32}
        grid:
          seed: [0, 1, 2, 3, 4]
        """)


def names_of(runs):
    return [name for name, _ in runs]


def stem(name):
    """A run name without its config hash."""
    return name.rsplit("-", 1)[0]


# --- Expansion -------------------------------------------------------------------------------

def test_smoke_config_expands_in_order_with_hashed_names():
    runs = sweep.expand(CONFIGS / "smoke.yaml")
    assert [stem(n) for n in names_of(runs)] == [
        "freezeall-seed0", "freezeall-seed1", "unfreezeall-seed0", "unfreezeall-seed1"]
    assert all(len(n.rsplit("-", 1)[1]) == 8 for n in names_of(runs))
    assert [(c.schedule, c.seed) for _, c in runs] == [
        ("freezeall", 0), ("freezeall", 1), ("unfreezeall", 0), ("unfreezeall", 1)]
    assert {(c.dataset, c.epochs, c.image_size, c.weights) for _, c in runs} == {
        ("synthetic_lesions", 1, 32, None)}


def test_names_and_order_do_not_depend_on_yaml_key_order():
    forward = {
        "base": {"epochs": 2, "learning_rate": 1e-3},
        "scenarios": [{"name": "a", "batch_size": 4}, {"name": "b", "batch_size": 8}],
        "grid": {"weights": ["imagenet", None], "fold": [1, 2], "seed": [0]},
    }
    backward = {
        "grid": {"seed": [0], "fold": [1, 2], "weights": ["imagenet", None]},
        "scenarios": [{"batch_size": 4, "name": "a"}, {"batch_size": 8, "name": "b"}],
        "base": {"learning_rate": 1e-3, "epochs": 2},
    }
    runs = sweep.expand(forward)
    assert names_of(runs) == names_of(sweep.expand(backward))
    assert stem(runs[0][0]) == "imagenet-a-fold1-seed0"
    assert stem(runs[-1][0]) == "none-b-fold2-seed0"
    assert len(set(names_of(runs))) == len(runs) == 8


def test_config_change_changes_the_hash_not_the_readable_part():
    runs = sweep.expand(LIGHT)
    changed = sweep.expand({**LIGHT, "base": {**LIGHT["base"], "epochs": 2}})
    assert [stem(n) for n in names_of(runs)] == [stem(n) for n in names_of(changed)]
    assert not set(names_of(runs)) & set(names_of(changed))
    # `1` and `1.0` are one learning rate, hence one config and one name.
    as_int = sweep.expand({"base": {"learning_rate": 1}, "grid": {"seed": [0]}})
    as_float = sweep.expand({"base": {"learning_rate": 1.0}, "grid": {"seed": [0]}})
    assert names_of(as_int) == names_of(as_float)
    assert isinstance(as_int[0][1].learning_rate, float)


def test_yaml_reads_exponent_numbers_as_floats(tmp_path):
    path = write_yaml(tmp_path / "lr.yaml", """\
        base: {learning_rate: 1e-3, weight_decay: 4e-1}
        grid: {seed: [0]}
        """)
    ((name, config),) = sweep.expand(path)
    assert config.learning_rate == pytest.approx(1e-3)
    assert config.weight_decay == pytest.approx(0.4)
    assert stem(name) == "seed0"


def test_dict_fields_merge_base_scenario_and_grid():
    runs = sweep.expand({
        "base": {"head": "mlp", "head_options": {"dropout": 0.5, "hidden_ratio": 0.5},
                 "schedule": "partial-unfreeze", "schedule_options": {"top": 2}},
        "scenarios": [{"name": "wide", "head_options": {"hidden_ratio": 1.0}}],
        "grid": {"head_options": [{"dropout": 0.1}, {"dropout": 0.3}]},
    })
    assert [c.head_options for _, c in runs] == [
        {"dropout": 0.1, "hidden_ratio": 1.0}, {"dropout": 0.3, "hidden_ratio": 1.0}]
    assert {c.schedule_options["top"] for _, c in runs} == {2}
    assert [stem(n) for n in names_of(runs)] == ["wide-dropout0.1", "wide-dropout0.3"]


def test_extends_merges_base_and_keeps_parent_grid(tmp_path):
    write_yaml(tmp_path / "parent.yaml", """\
        base: {epochs: 3, head: mlp, head_options: {dropout: 0.2}}
        scenarios: [{name: s, learning_rate: 0.01}]
        grid: {fold: [1, 2]}
        """)
    child = write_yaml(tmp_path / "child.yaml", """\
        extends: parent.yaml
        base: {batch_size: 4, head_options: {hidden_ratio: 1.0}}
        grid: {seed: [7]}
        """)
    loaded = sweep.load(child)
    assert loaded.name == "child"
    assert [p for p, _ in loaded.texts] == [str(child), str(tmp_path / "parent.yaml")]
    runs = sweep.expand(loaded)
    assert [stem(n) for n in names_of(runs)] == ["s-fold1-seed7", "s-fold2-seed7"]
    assert {(c.epochs, c.batch_size, c.learning_rate) for _, c in runs} == {(3, 4, 0.01)}
    assert runs[0][1].head_options == {"dropout": 0.2, "hidden_ratio": 1.0}


@pytest.mark.parametrize("text, where, expected", [
    ("bse: {epochs: 1}", "top level", "Did you mean 'base'?"),
    ("base: {lr: 0.1}", "base", "Valid keys: ["),
    ("grid: {seeds: [0, 1]}", "grid", "Did you mean 'seed'?"),
    ("grid: {fold: [1, two]}", "grid.fold[1]", "`fold` must be int. Received: fold='two'"),
    ("grid: {fold: 1}", "grid.fold", "Write e.g. `fold: [1]`"),
    ("grid: {seed: [0, 0]}", "grid.seed", "duplicate values"),
    ("base: {learning_rate: -1.0}", "base.learning_rate", "must be > 0"),
    ("base: {augment: 'yes please'}", "base.augment", "`augment` must be bool"),
    ("scenarios: [{schedule: ft}]", "scenarios[0]", "needs a `name`"),
    ("scenarios: [{name: a, epochs: 1}, {name: a, epochs: 2}]", "scenarios", "duplicate scenario name"),
    ("scenarios: [{name: a, fold: 1}]\ngrid: {fold: [2]}", "scenarios 'a' and grid.fold", "both set `fold`"),
    ("scenarios: [{name: a, epochs: 1}, {name: b, epochs: 1}]", "run (scenario='b')", "same config as run a-"),
])
def test_invalid_sweeps_name_the_file_and_the_entry(tmp_path, text, where, expected):
    path = write_yaml(tmp_path / "bad.yaml", text + "\n")
    with pytest.raises(sweep.SweepConfigError) as info:
        sweep.expand(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {where}"), message
    assert expected in message, message


def test_unknown_registry_name_lists_the_valid_ones(tmp_path):
    from radtl import schedules

    path = write_yaml(tmp_path / "bad.yaml", "scenarios: [{name: pu, schedule: partial_unfreeze}]\n")
    with pytest.raises(sweep.SweepConfigError) as info:
        sweep.expand(path)
    message = str(info.value)
    assert message.startswith(f"{path}: scenarios[0] 'pu'.schedule:")
    assert all(repr(name) in message for name in schedules.names())
    assert "Did you mean 'partial-unfreeze'?" in message


# --- Sharding --------------------------------------------------------------------------------

def test_shards_are_round_robin_and_cover_every_run_once():
    runs = list(range(11))
    shards = [sweep.shard(runs, i, 4) for i in range(1, 5)]
    assert shards[0] == [0, 4, 8] and shards[3] == [3, 7]
    assert sorted(sum(shards, [])) == runs
    assert sweep.shard(runs, 1, 1) == runs
    assert sweep.shard([0, 1], 3, 5) == []


@pytest.mark.parametrize("text", ["0/4", "5/4", "2-8", "a/b", "2/", ""])
def test_parse_shard_rejects_bad_values(text):
    with pytest.raises(ValueError, match=r"I/N|1 <= i <= n"):
        sweep.parse_shard(text)


def test_parse_shard():
    assert sweep.parse_shard("2/8") == (2, 8)
    assert sweep.parse_shard(" 8 / 8 ") == (8, 8)


# --- Running ---------------------------------------------------------------------------------

def test_sweep_starts_then_skips_and_records_provenance(light_yaml, tmp_path, capsys):
    runs_dir = tmp_path / "runs"
    trainer = FakeTrainer()
    report = sweep.run_sweep(light_yaml, runs_dir, runner=trainer)
    names = names_of(sweep.expand(light_yaml))
    assert trainer.calls == [(n, False) for n in names]
    assert report.done == names and not report.skipped and report.exit_code == 0
    assert all(RunDir(runs_dir / n).status == "finished" for n in names)
    assert f"[3/5] {names[2]} ... started" in capsys.readouterr().out

    manifest = json.loads((runs_dir / sweep.SWEEP_FILE).read_text())
    assert manifest["sources"][0]["text"] == light_yaml.read_text()
    assert [r["name"] for r in manifest["runs"]] == names
    assert manifest["runs"][0]["config"] == RunDir(runs_dir / names[0]).read_config().to_dict()

    again = FakeTrainer()
    report = sweep.run_sweep(light_yaml, runs_dir, runner=again)
    assert again.calls == [] and report.skipped == names and report.done == []
    assert f"[5/5] {names[4]} ... skipped" in capsys.readouterr().out


@pytest.mark.parametrize("stop_with", [KeyboardInterrupt, SystemExit])
def test_killed_sweep_resumes_where_it_stopped(light_yaml, tmp_path, stop_with):
    runs_dir = tmp_path / "runs"
    names = names_of(sweep.expand(light_yaml))
    killed = FakeTrainer(stop_at=3, stop_with=stop_with)
    with pytest.raises(stop_with):
        sweep.run_sweep(light_yaml, runs_dir, runner=killed)
    assert [RunDir(runs_dir / n).status for n in names] == [
        "finished", "finished", "unfinished", "new", "new"]

    trainer = FakeTrainer()
    report = sweep.run_sweep(light_yaml, runs_dir, runner=trainer)
    assert trainer.calls == [(names[2], True), (names[3], False), (names[4], False)]
    assert report.skipped == names[:2] and report.resumed == [names[2]] and report.done == names[3:]


def test_sweep_killed_by_sigterm_resumes(light_yaml, tmp_path):
    runs_dir, log = tmp_path / "runs", tmp_path / "calls.log"
    script = write_yaml(tmp_path / "sweep_job.py", """\
        import json, sys, time
        from pathlib import Path
        from radtl import sweep

        def runner(config, run_dir, *, resume):
            run_dir.mkdir(parents=True)
            (run_dir / "config.json").write_text(json.dumps({"config": config.to_dict()}))
            with open(sys.argv[3], "a") as log:
                log.write(run_dir.name + "\\n")
            if len(Path(sys.argv[3]).read_text().splitlines()) == 3:
                time.sleep(120)  # killed here, in the middle of the third run
            (run_dir / "metrics.json").write_text("{}")

        sweep.run_sweep(sys.argv[1], sys.argv[2], runner=runner)
        """)
    job = subprocess.Popen([sys.executable, str(script), str(light_yaml), str(runs_dir), str(log)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (log.exists() and len(log.read_text().splitlines()) == 3):
        assert job.poll() is None, job.stderr.read().decode()
        assert time.monotonic() < deadline, "the sweep did not reach its third run"
        time.sleep(0.05)
    job.send_signal(signal.SIGTERM)
    assert job.wait(timeout=30) == -signal.SIGTERM

    names = names_of(sweep.expand(light_yaml))
    trainer = FakeTrainer()
    report = sweep.run_sweep(light_yaml, runs_dir, runner=trainer)
    assert trainer.calls == [(names[2], True), (names[3], False), (names[4], False)]
    assert report.skipped == names[:2]


def test_failed_run_is_recorded_and_retried(light_yaml, tmp_path, capsys):
    runs_dir = tmp_path / "runs"
    names = names_of(sweep.expand(light_yaml))
    report = sweep.run_sweep(light_yaml, runs_dir, runner=FakeTrainer(fail={names[1]}))
    assert list(report.failed) == [names[1]] and "ValueError: boom" in report.failed[names[1]]
    assert report.done == [names[0], *names[2:]] and report.exit_code == 1
    assert "boom in" in (runs_dir / names[1] / sweep.ERROR_FILE).read_text()
    assert "1 failed" in capsys.readouterr().out

    trainer = FakeTrainer()
    report = sweep.run_sweep(light_yaml, runs_dir, runner=trainer)
    assert trainer.calls == [(names[1], True)] and report.exit_code == 0
    assert not (runs_dir / names[1] / sweep.ERROR_FILE).exists()


def test_run_failing_before_config_json_starts_afresh_next_time(light_yaml, tmp_path):
    def broken(config, run_dir, *, resume):
        raise OSError("disk full")

    runs_dir = tmp_path / "runs"
    report = sweep.run_sweep(light_yaml, runs_dir, runner=broken)
    assert len(report.failed) == 5 and all("OSError: disk full" == e for e in report.failed.values())
    trainer = FakeTrainer()  # would raise FileExistsError on a left-over directory
    assert sweep.run_sweep(light_yaml, runs_dir, runner=trainer).exit_code == 0
    assert trainer.calls == [(name, False) for name in names_of(sweep.expand(light_yaml))]


def test_run_locked_by_another_sweep_is_left_alone(light_yaml, tmp_path):
    import fcntl

    runs_dir = tmp_path / "runs"
    names = names_of(sweep.expand(light_yaml))
    (runs_dir / sweep.LOCK_DIR).mkdir(parents=True)
    with open(runs_dir / sweep.LOCK_DIR / f"{names[1]}.lock", "w") as other_process:
        fcntl.flock(other_process, fcntl.LOCK_EX | fcntl.LOCK_NB)
        trainer = FakeTrainer()
        report = sweep.run_sweep(light_yaml, runs_dir, runner=trainer)
    assert report.busy == [names[1]] and names[1] not in [n for n, _ in trainer.calls]
    assert len(report.done) == 4
    assert sweep.run_sweep(light_yaml, runs_dir, runner=trainer).done == [names[1]]


def test_runner_that_writes_no_metrics_fails_the_run(light_yaml, tmp_path):
    report = sweep.run_sweep(light_yaml, tmp_path / "runs", runner=FakeTrainer(write_metrics=False))
    assert len(report.failed) == 5
    assert all("without writing" in error for error in report.failed.values())


def test_shards_together_run_every_run_once(light_yaml, tmp_path):
    runs_dir = tmp_path / "runs"
    trainers = [FakeTrainer(), FakeTrainer()]
    for i, trainer in enumerate(trainers, 1):
        report = sweep.run_sweep(light_yaml, runs_dir, shard=f"{i}/2", runner=trainer)
        assert list(report.planned) == [n for n, _ in trainer.calls]
    names = names_of(sweep.expand(light_yaml))
    assert [n for n, _ in trainers[0].calls] == names[0::2]
    assert sorted(n for t in trainers for n, _ in t.calls) == sorted(names)


def test_dry_run_plans_and_writes_nothing(light_yaml, tmp_path, capsys):
    runs_dir = tmp_path / "runs"
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(light_yaml, runs_dir, runner=FakeTrainer(stop_at=2))
    before = sorted(p.relative_to(runs_dir) for p in runs_dir.rglob("*"))
    report = sweep.run_sweep(light_yaml, runs_dir, dry_run=True)  # no runner needed
    assert list(report.planned.values()) == ["skip", "resume", "start", "start", "start"]
    assert sorted(p.relative_to(runs_dir) for p in runs_dir.rglob("*")) == before
    assert "would resume" in capsys.readouterr().out
    assert "would start 3, resume 1, skip 1" in report.summary()


def test_other_grid_in_same_runs_dir_is_refused(light_yaml, tmp_path):
    runs_dir = tmp_path / "runs"
    sweep.run_sweep(light_yaml, runs_dir, runner=FakeTrainer())
    other = write_yaml(tmp_path / "other.yaml", "base: {epochs: 2}\ngrid: {seed: [0, 1]}\n")
    trainer = FakeTrainer()
    with pytest.raises(sweep.SweepMismatchError, match="another runs directory"):
        sweep.run_sweep(other, runs_dir, runner=trainer)
    with pytest.raises(sweep.SweepMismatchError):
        sweep.run_sweep(other, runs_dir, dry_run=True)
    assert trainer.calls == []


def test_superset_grid_extends_and_subset_keeps_the_record(light_yaml, tmp_path):
    runs_dir = tmp_path / "runs"
    sweep.run_sweep(light_yaml, runs_dir, runner=FakeTrainer())
    more = write_yaml(tmp_path / "more.yaml", "name: light\nbase: {epochs: 1, image_size: 32}\n"
                                              "grid: {seed: [0, 1, 2, 3, 4, 5]}\n")
    trainer = FakeTrainer()
    report = sweep.run_sweep(more, runs_dir, runner=trainer)
    assert len(report.skipped) == 5 and len(trainer.calls) == 1
    manifest = json.loads((runs_dir / sweep.SWEEP_FILE).read_text())
    assert len(manifest["runs"]) == 6 and manifest["previous"][0]["runs"] == 5

    fewer = write_yaml(tmp_path / "fewer.yaml", "base: {epochs: 1, image_size: 32}\ngrid: {seed: [0]}\n")
    assert sweep.run_sweep(fewer, runs_dir, runner=FakeTrainer()).skipped != []
    assert len(json.loads((runs_dir / sweep.SWEEP_FILE).read_text())["runs"]) == 6


# --- Shipped configs -------------------------------------------------------------------------

@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_config_expands_with_registered_names_and_options(path):
    from radtl import backbones, data, heads, losses, schedules

    runs = sweep.expand(path)
    assert runs and len(set(names_of(runs))) == len(runs)
    assert path.read_text().startswith("#"), "each config documents its source in a header comment"
    for _, config in runs:
        assert config.dataset in data.names() and config.backbone in backbones.names()
        assert config.head in heads.names() and config.loss in losses.names()
        assert config.schedule in schedules.names()
        assert 1 <= config.fold <= data.NUM_FOLDS
    for head, options in {(c.head, json.dumps(c.head_options, sort_keys=True)) for _, c in runs}:
        heads.build_head(head, **json.loads(options))  # an option the head lacks raises
    for loss, options in {(c.loss, json.dumps(c.loss_options, sort_keys=True)) for _, c in runs}:
        losses.get(loss, **json.loads(options))
    for schedule, options in {(c.schedule, json.dumps(c.schedule_options, sort_keys=True)) for _, c in runs}:
        schedules.REGISTRY.check_options(schedule, json.loads(options))  # the trainer passes the data


@pytest.mark.parametrize("task", ["acl", "breast"])
def test_radimagenet_configs_have_24_scenarios_x_2_weights_x_5_folds(task):
    runs = sweep.expand(CONFIGS / f"radimagenet_{task}_24.yaml")
    assert len(runs) == 24 * 2 * 5
    scenarios = {(c.backbone, c.schedule, c.learning_rate) for _, c in runs}
    assert len(scenarios) == 24
    assert {(s, lr) for _, s, lr in scenarios} == {
        ("unfreezeall", 1e-3), ("unfreezeall", 1e-4), ("freezeall", 1e-2), ("freezeall", 1e-3),
        ("unfreezetop10", 1e-2), ("unfreezetop10", 1e-3)}
    assert {c.backbone for _, c in runs} == {"resnet50", "densenet121", "inception_v3", "inception_resnet_v2"}
    assert {(c.weights, c.fold) for _, c in runs} == {(w, k) for w in ("radimagenet", "imagenet")
                                                       for k in range(1, 6)}
    assert {(c.dataset, c.image_size, c.batch_size, c.epochs, c.optimizer, c.preprocessing, c.head,
             c.head_options["dropout"], c.loss, c.augment) for _, c in runs} == {
        (f"radimagenet_{task}", 256, 256, 30, "adam", "official", "linear", 0.5, "hard", True)}


def test_breast_24_differs_from_acl_24_only_in_dataset():
    acl = [c.replace(dataset="radimagenet_breast") for _, c in sweep.expand(CONFIGS / "radimagenet_acl_24.yaml")]
    breast = [c for _, c in sweep.expand(CONFIGS / "radimagenet_breast_24.yaml")]
    assert acl == breast


def test_frees_best_uses_the_head_they_actually_trained():
    from radtl import heads

    runs = sweep.expand(CONFIGS / "frees_best.yaml")
    assert len(runs) == 2 * 5
    assert {c.head_options == heads.FREES_CONV_OPTIONS for _, c in runs} == {True}
    by_task = {c.dataset: (c.learning_rate, c.weight_decay) for _, c in runs}
    assert by_task == {"radimagenet_acl": (1e-3, 0.4), "radimagenet_breast": (5e-4, 0.1)}
    assert {(c.backbone, c.weights, c.schedule, c.optimizer, c.lr_decay, c.batch_size) for _, c in runs} == {
        ("resnet50", "imagenet", "partial-unfreeze", "sgd", "cosine", 64)}


def test_davila_has_the_eight_strategies():
    runs = sweep.expand(CONFIGS / "davila_8.yaml")
    assert {c.schedule for _, c in runs} == {"ft", "lp", "lp-ft", "g-lf", "g-fl", "l1-sp", "l2-sp", "auto-rgn"}
    assert len(runs) == 8 * 3 * 2 * 5


def test_dotted_grid_keys_set_one_key_of_a_dict_field():
    runs = sweep.expand({
        "base": {"weights": None, "head": "mlp", "head_options": {"dropout": 0.5, "hidden_ratio": 0.5}},
        "grid": {"head_options.dropout": [0.1, 0.3], "head_options.hidden_ratio": [1.0]},
    })
    assert [c.head_options for _, c in runs] == [{"dropout": 0.1, "hidden_ratio": 1.0},
                                                 {"dropout": 0.3, "hidden_ratio": 1.0}]
    assert [stem(n) for n in names_of(runs)] == ["dropout0.1-hidden_ratio1", "dropout0.3-hidden_ratio1"]


def test_dotted_grid_keys_need_a_dict_field():
    with pytest.raises(sweep.SweepConfigError, match="only the dict fields"):
        sweep.expand({"grid": {"epochs.x": [1]}})


def test_shipped_source_matters_grid_varies_the_confounder_fraction():
    runs = sweep.expand(CONFIGS / "source_matters_breast.yaml")
    assert len(runs) == 2 * 6 * 5
    assert {c.confounder["fraction"] for _, c in runs} == {0.0, 0.1, 0.2, 0.5, 0.8, 1.0}
    assert {c.confounder["kind"] for _, c in runs} == {"tag"}
    assert {(c.weights, c.preprocessing) for _, c in runs} == {("imagenet", "native"), ("radimagenet", "official")}


def test_a_dotted_grid_key_and_a_scenario_may_not_set_the_same_key():
    with pytest.raises(sweep.SweepConfigError, match="both set `confounder.fraction`"):
        sweep.expand({"base": {"weights": None},
                      "scenarios": [{"name": "s", "confounder": {"kind": "tag", "fraction": 0.5}}],
                      "grid": {"confounder.fraction": [0.1]}})


# --- Data reuse across runs ----------------------------------------------------------------

@pytest.fixture(scope="module")
def built_dir(tmp_path_factory):
    """A TFDS data dir holding synthetic_lesions fold 1 (built once for the module)."""
    from radtl import data

    root = tmp_path_factory.mktemp("tfds")
    data.open("synthetic_lesions", 1, root)
    return root


class DataReadingTrainer(FakeTrainer):
    """`FakeTrainer` that first reads fold 1's training split through `radtl.data`, as
    `radtl.train.run` does, and records the fold object and the label order it saw.
    After the first run it deletes the stored training records (`after_first`)."""

    def __init__(self, data_dir, after_first=None):
        super().__init__()
        self.data_dir, self.after_first = data_dir, after_first
        self.folds, self.labels = [], []

    def __call__(self, config, run_dir, *, resume=False):
        from radtl import data

        fold = data.open("synthetic_lesions", 1, self.data_dir)
        self.folds.append(fold)
        ds = fold.load("train", image_size=32, batch_size=64, seed=config.seed)
        self.labels.append([int(y) for _, labels in ds.as_numpy_iterator() for y in labels])
        if len(self.folds) == 1 and self.after_first is not None:
            self.after_first()
        return super().__call__(config, run_dir, resume=resume)


def _two_seed_yaml(tmp_path):
    return write_yaml(tmp_path / "two.yaml", "name: two\nbase: {epochs: 1, image_size: 32}\ngrid: {seed: [0, 1]}\n")


def _delete_training_records(root):
    def delete():
        records = list(Path(root).rglob("*train.tfrecord*"))
        assert records
        for path in records:
            path.unlink()
    return delete


def test_sweep_reuses_the_opened_fold_and_its_decoded_images(built_dir, tmp_path):
    import shutil

    from radtl import data

    copy = tmp_path / "tfds"
    shutil.copytree(built_dir, copy)
    trainer = DataReadingTrainer(copy, after_first=_delete_training_records(copy))
    report = sweep.run_sweep(_two_seed_yaml(tmp_path), tmp_path / "runs", runner=trainer, reuse_data=True)
    # The second run read the training split although its records were deleted: decoded once.
    assert report.exit_code == 0 and len(report.done) == 2
    assert trainer.folds[0] is trainer.folds[1]
    # Each run saw the batches it sees alone (its own seeded shuffle order).
    fresh = data.open("synthetic_lesions", 1, built_dir)
    for seed, labels in zip((0, 1), trainer.labels):
        alone = fresh.load("train", image_size=32, batch_size=64, seed=seed)
        assert labels == [int(y) for _, batch in alone.as_numpy_iterator() for y in batch]
    assert trainer.labels[0] != trainer.labels[1]
    assert data.open("synthetic_lesions", 1, built_dir) is not fresh  # no memo outside the sweep


@pytest.mark.parametrize("reuse_data", [False, None])  # None: off with a custom runner
def test_sweep_without_reuse_reads_every_run_afresh(built_dir, tmp_path, reuse_data):
    import shutil

    copy = tmp_path / "tfds"
    shutil.copytree(built_dir, copy)
    trainer = DataReadingTrainer(copy, after_first=_delete_training_records(copy))
    report = sweep.run_sweep(_two_seed_yaml(tmp_path), tmp_path / "runs", runner=trainer, reuse_data=reuse_data)
    assert len(report.done) == 1 and len(report.failed) == 1  # the second run re-read the deleted records
    assert trainer.folds[0] is not trainer.folds[1]


def test_an_empty_dict_in_a_scenario_clears_the_base_setting():
    runs = sweep.expand({
        "base": {"weights": None, "confounder": {"kind": "tag", "fraction": 0.5}},
        "scenarios": [{"name": "tagged"}, {"name": "clean", "confounder": {}}],
    })
    configs = {stem(name): config for name, config in runs}
    assert configs["tagged"].confounder["fraction"] == 0.5
    assert configs["clean"].confounder == {}
