"""The package as users meet it: imports, lazy submodules, saved models, the CLI's start-up."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MODULES = sorted(p.stem for p in (REPO / "radtl").glob("*.py") if p.stem != "__init__") + ["schedules"]


def _python(code, timeout=300):
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                            timeout=timeout, env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin",
                                                  "HOME": str(Path.home())})
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_every_module_imports_alone_in_a_fresh_interpreter():
    # An import cycle shows up as an ImportError for the module that closes it.
    code = ("import concurrent.futures, subprocess, sys\n"
            "def check(name):\n"
            "    r = subprocess.run([sys.executable, '-c', f'import radtl.{name}'], capture_output=True, text=True)\n"
            "    assert r.returncode == 0, (name, r.stderr[-2000:])\n"
            "with concurrent.futures.ThreadPoolExecutor(2) as pool:\n"
            f"    list(pool.map(check, {MODULES!r}))\n"
            "print('ok')\n")
    assert _python(code, timeout=900).strip() == "ok"


def test_low_level_modules_import_nothing_above_them():
    code = ("import sys, radtl.weights, radtl.download, radtl.registry, radtl.rundir, radtl.config, radtl.health\n"
            "print(sorted(m for m in sys.modules if m.startswith('radtl.')))")
    loaded = set(eval(_python(code)))
    assert loaded <= {"radtl.weights", "radtl.download", "radtl.registry", "radtl.rundir", "radtl.config",
                      "radtl.health", "radtl._checks"}, loaded


def test_submodules_are_reachable_after_import_radtl():
    out = _python("import radtl; print(radtl.schedules.__name__, radtl.rundir.RunDir.__name__)")
    assert out.split() == ["radtl.schedules", "RunDir"]


def test_import_radtl_and_the_cli_do_not_import_tensorflow():
    out = _python("import sys, radtl, radtl.cli; print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    assert out.split() == ["False", "False"]


def test_cli_help_answers_without_tensorflow():
    out = _python("import sys\nfrom click.testing import CliRunner\nfrom radtl.cli import cli\n"
                  "r = CliRunner().invoke(cli, ['train', '--help'])\n"
                  "assert r.exit_code == 0, r.output\nprint('tensorflow' in sys.modules, '--schedule-option' in r.output)")
    assert out.split() == ["False", "True"]


@pytest.mark.parametrize("first", ["import radtl\nimport keras\n", "import keras\nimport radtl\n",
                                   "import radtl\nimport tensorflow\nimport keras\n"],
                         ids=["radtl-keras", "keras-radtl", "radtl-tensorflow-keras"])
def test_saved_model_loads_after_import_radtl(tmp_path, first):
    path = tmp_path / "model.keras"
    _python("import keras, radtl\n"
            "m = radtl.build_model('mobilenet_v2', None, head='mlp', input_shape=(32, 32, 3), preprocessing='native')\n"
            "m.compile(loss=radtl.losses.get('label_smoothing', epsilon=0.1), "
            "metrics=[radtl.keras_metrics.PositiveClassAUC()])\n"
            f"m.save({str(path)!r})")
    out = _python(first + f"m = keras.models.load_model({str(path)!r})\n"
                  "print(json.dumps([type(m.loss).__name__, [l.name for l in m.layers][:2]]))".replace(
                      "json.dumps", "__import__('json').dumps"))
    loss_name, layers = json.loads(out)
    assert loss_name == "LabelSmoothing"
