"""`splineatlas info` / `train`: output on good input, one-line errors and non-zero exits on bad input."""

import os

import torch

from app.cli.main import main
from geometry.networks.network import Network
from geometry.networks.runs import open_run
from geometry.networks.spec import mlp_spec
from geometry.networks.training import save_schedule


def test_info_on_demo_run(spirals_run_path, capsys):
    assert main(["info", str(spirals_run_path)]) == 0
    out = capsys.readouterr().out
    assert "piecewise-affine: yes" in out and "parameters:   8,707" in out and "epoch  train acc" in out
    assert out.strip().splitlines()[-1].split()[0] == "3000"


def test_info_bad_inputs_one_line_nonzero(tmp_path, capsys):
    (tmp_path / "empty.pt").write_bytes(b"")
    cases = [tmp_path / "missing.pt", tmp_path / "empty.pt"]

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    cases.append(tmp_path / "evil.pt")
    for path in cases:
        assert main(["info", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert not (tmp_path / "ran").exists()


def test_info_dataset_mismatch(tmp_path, capsys):
    from geometry.networks.checkpoints import save_checkpoint

    save_checkpoint(tmp_path / "n.pt", Network(mlp_spec([2, 4, 3])))
    assert main(["info", str(tmp_path / "n.pt"), "--dataset", "digits"]) == 2
    assert "64 features" in capsys.readouterr().err


def test_train_writes_a_run(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--dataset", "moons", "--arch", "2-8-2", "--epochs", "4", "--save-every", "2", "--out", str(out), "--samples", "100"]) == 0
    assert sorted(p.name for p in out.glob("epoch_*.pt")) == ["epoch_0000.pt", "epoch_0002.pt", "epoch_0004.pt"]
    assert "final train accuracy" in capsys.readouterr().out
    assert main(["train", "--dataset", "moons", "--arch", "2-x-2", "--epochs", "1", "--out", str(out)]) == 2


def test_train_saves_union_of_log_and_every_schedules(tmp_path):
    # --log-checkpoints 4 over 20 epochs: 0, geomspace(1, 20, 3) = 1, 4.47, 20 -> {0, 1, 4, 20};
    # --save-every 10 -> {0, 10, 20}; both given: the union (earlier --save-every was silently dropped)
    out = tmp_path / "u"
    assert (
        main(
            [
                "train",
                "--dataset",
                "moons",
                "--arch",
                "2-4-2",
                "--epochs",
                "20",
                "--save-every",
                "10",
                "--log-checkpoints",
                "4",
                "--out",
                str(out),
                "--samples",
                "40",
            ]
        )
        == 0
    )
    assert sorted(int(p.stem.split("_")[1]) for p in out.glob("epoch_*.pt")) == [0, 1, 4, 10, 20]
    assert open_run(out).epochs == [0, 1, 4, 10, 20]
    assert save_schedule(20, 10) == [0, 10, 20] and save_schedule(20, log_points=4) == [0, 1, 4, 20]
