"""Pure pieces of the fault handling: OSError texts as dockerd prints them, and a log
record cut short by a full disk skipped by the reader."""
from __future__ import annotations

import errno

import pytest

from berth import errdefs
from berth.daemon.logs import _messages
from berth.pkg import atomicfile, ioutil
from berth.runtime import k8sfile


def test_os_error_text_is_gos() -> None:
    assert errdefs.os_error_text(OSError(errno.ENOSPC, "No space left on device")) == "no space left on device"
    e = OSError(errno.ENOSPC, "No space left on device", "/var/lib/berth/x")
    assert errdefs.os_error_text(e) == "/var/lib/berth/x: no space left on device"
    assert errdefs.os_error_text(OSError(errno.EMFILE, "x")) == "too many open files"
    e = errdefs.PathError("write", "/var/lib/berth/overlay2/x/link", OSError(errno.ENOSPC, "No space left on device"))
    assert errdefs.os_error_text(e) == "write /var/lib/berth/overlay2/x/link: no space left on device"


def test_file_writes_fail_as_gos_path_errors() -> None:
    """/dev/full answers every write with ENOSPC, as a full data root does."""
    with pytest.raises(errdefs.PathError) as info:
        ioutil.write_file("/dev/full", b"x")
    assert errdefs.os_error_text(info.value) == "write /dev/full: no space left on device"
    with pytest.raises(errdefs.PathError) as info:
        ioutil.write_file("/nonexistent-dir/f", b"x")
    assert errdefs.os_error_text(info.value) == "open /nonexistent-dir/f: no such file or directory"
    with pytest.raises(errdefs.PathError) as info:
        atomicfile.write_file("/nonexistent-dir/f", b"x")
    assert errdefs.os_error_text(info.value).startswith("open /nonexistent-dir/.tmp-f")


def test_log_record_cut_by_a_full_disk_is_skipped() -> None:
    records = [
        b"2026-12-02T08:00:00.000000001+00:00 stdout F line 1\n",
        # "2026-12-0" was all that fitted; the next record was appended to it
        b"2026-12-02026-12-02T08:00:01.000000001+00:00 stdout F line 3\n",
        b"2026-12-02T08:00:02.000000001+00:00 stdout F line 4\n",
    ]
    out = [m.line for m in _messages(k8sfile.LineMerger(), iter(records), b"")]
    assert out == [b"line 1\n", b"line 4\n"]
