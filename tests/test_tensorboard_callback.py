"""The TensorBoard callback writes the right scalars, and does nothing when tensorboard is absent.

tensorboard itself is not a test dependency, so a recording stand-in for
``torch.utils.tensorboard.SummaryWriter`` is injected where the callback imports it.
"""
import math
import sys
import types
from types import SimpleNamespace

from lstmkit.train.callbacks import TensorBoard


class RecordingWriter:
    def __init__(self, log_dir):
        self.log_dir, self.scalars, self.closed = log_dir, [], False

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))

    def close(self):
        self.closed = True


def test_scalars_reach_the_writer(monkeypatch, tmp_path):
    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = RecordingWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    cb = TensorBoard(tmp_path / "tb", "ppl", math.exp)
    trainer = SimpleNamespace(state=SimpleNamespace(step=7), lr=0.5)
    cb.on_step_end(trainer, {"loss": 2.0})
    cb.on_eval_end(trainer, {"loss": 1.0})
    cb.on_train_end(trainer, "done")
    assert cb.writer.log_dir == str(tmp_path / "tb")
    assert cb.writer.scalars == [("train/loss", 2.0, 7), ("train/lr", 0.5, 7),
                                 ("valid/loss", 1.0, 7), ("valid/ppl", math.exp(1.0), 7)]
    assert cb.writer.closed


def test_absent_tensorboard_is_a_no_op(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import raises ImportError
    cb = TensorBoard(tmp_path / "tb", "bpc", lambda loss: loss / math.log(2))
    trainer = SimpleNamespace(state=SimpleNamespace(step=1), lr=0.1)
    cb.on_step_end(trainer, {"loss": 2.0})
    cb.on_eval_end(trainer, {"loss": 1.0})
    cb.on_train_end(trainer, "done")
    assert cb.writer is None and not (tmp_path / "tb").exists()
