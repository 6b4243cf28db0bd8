"""Saved files get the permissions open() would give, are written through symlinks, and a
missing folder is named as the user gave it."""

from __future__ import annotations

import os
import stat

import pytest

import rnncore
from rnncore.layers import Dense


def _model():
    model = rnncore.Sequential([rnncore.Input((3,)), Dense(2)])
    model.build()
    return model


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_file_follows_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        _model().save(tmp_path / "m.rnncore")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "m.rnncore") == 0o640  # 0o666 less the umask, not mkstemp's 0o600


def test_an_existing_file_keeps_its_mode(tmp_path):
    path = tmp_path / "m.rnncore"
    path.write_bytes(b"old")
    os.chmod(path, 0o664)
    _model().save(path)
    assert _mode(path) == 0o664
    assert rnncore.models.load_model(path).count_params() == 8


def test_saving_through_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path):
    (tmp_path / "store").mkdir()
    target = tmp_path / "store" / "model.rnncore"
    target.write_bytes(b"old")
    link = tmp_path / "current.rnncore"
    link.symlink_to(target)
    _model().save(link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert rnncore.models.load_model(target).count_params() == 8
    assert [p.name for p in (tmp_path / "store").iterdir()] == ["model.rnncore"]  # no temp left


def test_a_missing_folder_is_named_as_given(tmp_path):
    given = str(tmp_path / "no_such_folder" / "m.rnncore")
    with pytest.raises(FileNotFoundError, match="no_such_folder/m.rnncore") as info:
        _model().save(given)
    assert ".tmp" not in str(info.value)
