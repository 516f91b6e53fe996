"""Encryption at rest: with LEDGER_CIPHER_KEY set, payloads are stored encrypted (AES-GCM),
the hash chain and the seals still verify, and `verify` says that encryption is on."""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from uuid import UUID

import pytest

from ledger.application import open_ledger
from tests.cli import BACKENDS, LEDGER, TIMEOUT, Result, environment, fresh_store
from tests.tamper import CODE_A, RawStore, Scenario, copies


def run(url: str, *args: str, key: str | None, actor: str | None = None) -> Result:
    env = environment(url, actor)
    if key is not None:
        env["LEDGER_CIPHER_KEY"] = key
    done = subprocess.run(
        [LEDGER, *args], env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    return Result(done.returncode, done.stdout, done.stderr)


def ok(done: Result) -> Result:
    assert done.code == 0, done
    return done


def test_keygen_prints_a_new_aes_256_key() -> None:
    first = ok(run("sqlite:///unused.db", "keygen", key=None)).stdout.strip()
    second = ok(run("sqlite:///unused.db", "keygen", key=None)).stdout.strip()
    assert len(base64.b64decode(first, validate=True)) == 32
    assert first != second


KEY = base64.b64encode(bytes(range(32))).decode()


def test_a_key_without_the_cryptography_package_says_what_to_install(tmp_path: Path) -> None:
    """Without the `crypto` extra (a plain `pip install .`, as ./scripts/demo makes), every
    command run with LEDGER_CIPHER_KEY failed with "unexpected TopicError" (exit 1), where
    keygen said what to install. Here a package that fails to import stands in for it."""
    shadow = tmp_path / "shadow"
    (shadow / "cryptography").mkdir(parents=True)
    (shadow / "cryptography" / "__init__.py").write_text('raise ImportError("not here")\n')
    store = tmp_path / "ledger.db"
    env = environment(f"sqlite:///{store}")
    env["LEDGER_CIPHER_KEY"] = KEY
    env["PYTHONPATH"] = os.pathsep.join([str(shadow), *filter(None, [env.get("PYTHONPATH")])])
    line = (
        "error: encryption needs the `cryptography` package: "
        "pip install 'records-custody-ledger[crypto]'\n"
    )
    for args in (("keygen",), ("init", "--director", "dir", "--name", "主任"), ("verify",)):
        done = subprocess.run(
            [LEDGER, *args], env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
        assert (done.returncode, done.stderr, done.stdout) == (2, line, ""), done
    assert not store.exists()


@pytest.fixture(scope="module", params=BACKENDS)
def golden(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Scenario, Callable[[], str]]]:
    """The tamper scenario (records A, B, C and a seal), written with a key."""
    with copies(request.param, tmp_path_factory.mktemp("encrypted"), KEY) as found:
        yield found


@pytest.fixture
def encrypted(golden: tuple[Scenario, Callable[[], str]]) -> tuple[str, str]:
    return golden[1](), KEY


def test_payloads_are_stored_encrypted_and_still_verify(
    encrypted: tuple[str, str], golden: tuple[Scenario, Callable[[], str]]
) -> None:
    url, key = encrypted
    scenario = golden[0]
    raw = RawStore(url)
    states = [bytes(state) for (state,) in raw.query(f"SELECT state FROM {raw.table}")]
    assert len(states) == 19
    for state in states:
        assert not state.startswith(b'{"body":')
        assert "会议纪要".encode() not in state and b"A1-01-1-1" not in state
    given = ["--digest", scenario.seal_digest, "--position", str(scenario.seal_position)]
    done = ok(run(url, "verify", *given, key=key))
    assert "encryption: on" in done.stdout.splitlines()
    assert done.stdout.splitlines()[-1] == "intact"
    sealed = ok(run(url, "seal", "--json", key=key, actor="audit")).json()
    assert sealed["seal"] == 2
    assert ok(run(url, "verify", key=key)).stdout.splitlines()[-1] == "intact"


def test_a_changed_ciphertext_byte_is_named(encrypted: tuple[str, str]) -> None:
    url, key = encrypted
    raw = RawStore(url)
    position, originator, state = raw.query(
        f"SELECT {raw.position}, originator_id, state FROM {raw.table} "
        "WHERE topic = 'ledger/Record/Shelved'"
    )[0]
    changed = bytearray(bytes(state))
    changed[40] ^= 0x01
    raw.tamper(
        f"UPDATE {raw.table} SET state = ? WHERE {raw.position} = ?", (bytes(changed), position)
    )
    done = run(url, "verify", key=key)
    assert done.code == 6, done
    lines = done.stdout.splitlines()
    assert lines[0] == (
        f"record {UUID(str(originator))} (code {CODE_A}) version 3: unreadable (Invalid cipher "
        "tag): the stored bytes were changed"
    )
    # No digest is made up from an event that could not be read.
    report = run(url, "verify", "--json", key=key).json()
    assert report["digest"] is None and report["unreadable"] == 1, report
    assert f"log digest at position {report['head']}: unknown (1 event could not be read)" in lines


def test_verify_without_the_key_is_refused(encrypted: tuple[str, str]) -> None:
    """Without the key, verify on the encrypted, sealed store said "encryption: off",
    "seals: none yet", and every event "the stored bytes were changed" (exit 6). It is
    refused as every command refuses it, with nothing on stdout."""
    url, key = encrypted
    line = (
        "error: the store is encrypted: set LEDGER_CIPHER_KEY to its key (no event can be "
        "read without it)\n"
    )
    for args in ((), ("--json",), ("--record", CODE_A)):
        done = run(url, "verify", *args, key=None)
        assert (done.code, done.stderr, done.stdout) == (2, line, ""), done
    assert ok(run(url, "verify", key=key)).stdout.splitlines()[-1] == "intact"


def test_verify_refuses_a_key_that_reads_no_event(encrypted: tuple[str, str]) -> None:
    """With the wrong key, verify reported every event as changed ("unreadable ... the
    stored bytes were changed", NOT INTACT, exit 6). A key that decrypts no event is
    refused as every command refuses it, with nothing printed on stdout."""
    url, _ = encrypted
    wrong = ok(run(url, "keygen", key=None)).stdout.strip()
    line = "error: LEDGER_CIPHER_KEY is not this store's key: it decrypts none of its events\n"
    for args in ((), ("--json",), ("--record", CODE_A)):
        done = run(url, "verify", *args, key=wrong)
        assert (done.code, done.stderr, done.stdout) == (2, line, ""), done


def test_verify_with_the_key_names_a_changed_first_event(encrypted: tuple[str, str]) -> None:
    """A changed first event is what the other commands' key check cannot tell from a
    wrong key; verify, which reads on while an event decrypts, names it (exit 6)."""
    url, key = encrypted
    raw = RawStore(url)
    flip_a_byte(raw, f"ORDER BY {raw.position} LIMIT 1")
    done = run(url, "verify", key=key)
    assert done.code == 6, done
    lines = done.stdout.splitlines()
    assert lines[0].endswith(
        "version 1: unreadable (Invalid cipher tag): the stored bytes were changed"
    ), done
    assert "encryption: on" in lines and lines[-1] == "NOT INTACT"


def test_the_holder_of_a_code_is_read_through_the_cipher(
    encrypted: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bulk posting's routing reads code holders from the claims' stored bodies: decrypted."""
    url, key = encrypted
    monkeypatch.setenv("LEDGER_CIPHER_KEY", key)
    ledger = open_ledger(url)
    try:
        holders = ledger.code_holders([CODE_A, "NO-SUCH-CODE"])
        assert holders == {CODE_A: ledger.record(CODE_A).id}
    finally:
        ledger.close()


def test_a_wrong_or_missing_key_is_refused_before_anything_is_read_or_written(
    encrypted: tuple[str, str],
) -> None:
    """A command run with the wrong key, or without one, read what it could not decrypt
    ("unexpected ValueError", exit 1) and wrote new events the store's own key could not
    read. The key is now checked against the store's first event when it is opened."""
    url, key = encrypted
    before = RawStore(url).query(f"SELECT count(*) FROM {RawStore(url).table}")[0][0]
    wrong = ok(run(url, "keygen", key=None)).stdout.strip()
    move = ("relocate", CODE_A, "--location", "A1-09-1-1")
    for given, line in (
        (wrong, "error: LEDGER_CIPHER_KEY is not this store's key: it cannot decrypt the "
                "first event (with the right key, `ledger verify` says what changed)\n"),
        (None, "error: the store is encrypted: set LEDGER_CIPHER_KEY to its key (or its "
               "first event was changed: `ledger verify` says)\n"),
        ("not-base64!", "error: LEDGER_CIPHER_KEY is not an AES key: 16, 24 or 32 bytes in "
                        "base64 (`ledger keygen` prints one)\n"),
    ):  # fmt: skip
        for args in (("show", CODE_A), move):
            done = run(url, *args, key=given, actor="arch")
            assert (done.code, done.stderr, done.stdout) == (2, line, ""), done
    assert RawStore(url).query(f"SELECT count(*) FROM {RawStore(url).table}")[0][0] == before
    assert ok(run(url, "show", CODE_A, key=key)).stdout


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_key_on_a_store_that_is_not_encrypted_is_refused(backend: str, tmp_path: Path) -> None:
    """verify too: it reported every event of the plain store as changed ("unreadable
    (Invalid cipher tag): the stored bytes were changed", NOT INTACT, exit 6)."""
    with fresh_store(backend, tmp_path) as url:
        ok(run(url, "init", "--director", "dir", "--name", "主任", key=None))
        ok(run(url, "seal", key=None, actor="dir"))
        line = "error: the store is not encrypted: unset LEDGER_CIPHER_KEY\n"
        for args in (
            ("actor", "list"),
            ("verify",),
            ("verify", "--json"),
            ("verify", "--record", "dir"),
        ):
            done = run(url, *args, key=KEY)
            assert (done.code, done.stderr, done.stdout) == (2, line, ""), done
        assert ok(run(url, "verify", key=None)).stdout.splitlines()[-1] == "intact"


def test_an_event_changed_after_the_first_is_one_clear_line(
    encrypted: tuple[str, str],
) -> None:
    """The key is right, but a later event's bytes were changed: reading it says so (exit 6),
    as verify would, not "unexpected ValueError"."""
    url, key = encrypted
    flip_a_byte(RawStore(url), "WHERE topic = 'ledger/Record/Shelved'")
    done = run(url, "show", CODE_A, key=key)
    assert done.code == 6, done
    assert done.stderr == (
        "error: a stored event could not be read (Invalid cipher tag): its bytes were "
        "changed, or it was written with another key; `ledger verify` names every such event\n"
    ), done


def flip_a_byte(raw: RawStore, where: str) -> None:
    """Change one byte of the stored state of the first row ``where`` selects."""
    position, state = raw.query(f"SELECT {raw.position}, state FROM {raw.table} {where}")[0]
    changed = bytearray(bytes(state))
    changed[40] ^= 0x01
    raw.tamper(
        f"UPDATE {raw.table} SET state = ? WHERE {raw.position} = ?", (bytes(changed), position)
    )
