"""User prompt files, malformed input, sha256 checks, offline errors and downloads (over loopback)."""

import hashlib
import http.server
import threading

import pytest

from t2ibench import T2IBenchError, benchmarks
from t2ibench.data_cli import main as data_main
from t2ibench.data_files import DataFile, resolve


def test_prompt_file_formats(tmp_path):
    txt = tmp_path / "mine.txt"
    txt.write_text("a red cube\n\ta blue ball  \n\n")
    assert [(p.id, p.text) for p in benchmarks.load("prompt_file", path=str(txt))] == [
        ("mine-1", "a red cube"),
        ("mine-2", "a blue ball"),
    ]
    data = tmp_path / "mine.csv"
    data.write_text('id,prompt,style\nc1,"a cat, sleeping",photo\nc2,a dog,sketch\n')
    prompts = benchmarks.load("prompt_file", path=str(data))
    assert (
        [p.id for p in prompts] == ["c1", "c2"]
        and prompts[0].metadata == {"style": "photo", "line": 2}
        and prompts[0].text == "a cat, sleeping"
    )
    lines = tmp_path / "mine.jsonl"
    lines.write_text('{"prompt": "a frog", "tags": ["x"]}\n\n{"prompt": "a bird", "id": "b"}\n')
    prompts = benchmarks.load("prompt_file", path=str(lines))
    assert [p.id for p in prompts] == ["mine-1", "b"] and prompts[0].metadata["tags"] == ["x"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.txt", b"a cat\n\xff\xfe a dog\n", r"bad.txt:2: not valid UTF-8"),
        ("gap.txt", b"a cat\n\na dog\n", r"gap.txt:2: empty line"),
        ("cols.csv", b"text,id\na cat,1\n", r"cols.csv:1: missing column\(s\) prompt"),
        ("ragged.csv", b"prompt,id\na cat,1\na dog,2,extra\n", r"ragged.csv:3: expected 2 fields"),
        ("empty.csv", b"prompt,id\na cat,1\n ,2\n", r"empty.csv:3: empty or non-text prompt"),
        ("broken.jsonl", b'{"prompt": "a cat"}\n{"prompt": "a dog"\n', r"broken.jsonl:2: invalid JSON"),
        ("dup.csv", b"prompt,id\na cat,x\na dog,x\n", r"dup.csv:3: duplicate id 'x'"),
        ("badid.csv", b"prompt,id\na cat,a/b\n", r"badid.csv:2: prompt id 'a/b' must match"),
        ("nul.txt", b"a cat\na d\x00og\n", r"nul.txt:2: a NUL character"),
        ("nul.jsonl", b'{"prompt": "a cat"}\n{"prompt": "a \\u0000dog"}\n', r"nul.jsonl:2: .*NUL"),
    ],
)
def test_malformed_prompt_files_name_file_and_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(T2IBenchError, match=message):
        benchmarks.load("prompt_file", path=str(path))


def test_lines_end_at_newline_only(tmp_path):
    """A TXT or JSONL prompt file is split at \\n (and \\r\\n) alone: form feed, U+2028 and U+0085 are characters of
    a prompt (str.splitlines would split there, shifting every later id), and valid JSON lines holding a raw U+2028
    are read as they are."""
    txt = tmp_path / "odd.txt"
    txt.write_bytes("a red\x0ccube\r\na blue\u2028ball\nan orange\x85fish\n".encode())
    assert [(p.id, p.text) for p in benchmarks.load("prompt_file", path=str(txt))] == [
        ("odd-1", "a red\x0ccube"),
        ("odd-2", "a blue\u2028ball"),
        ("odd-3", "an orange\x85fish"),
    ]
    lines = tmp_path / "odd.jsonl"
    lines.write_bytes('{"prompt": "a frog\u2028on a log"}\n{"prompt": "a bird", "id": "b"}\n'.encode())
    assert [(p.id, p.text) for p in benchmarks.load("prompt_file", path=str(lines))] == [
        ("odd-1", "a frog\u2028on a log"),
        ("b", "a bird"),
    ]


def test_missing_prompt_file_and_unknown_format(tmp_path):
    with pytest.raises(T2IBenchError, match="needs benchmark.path"):
        benchmarks.load("prompt_file")
    with pytest.raises(T2IBenchError, match="does not exist"):
        benchmarks.load("prompt_file", path=str(tmp_path / "nope.txt"))
    (tmp_path / "x.xml").write_text("<a/>")
    with pytest.raises(T2IBenchError, match="unknown prompt file format 'xml'"):
        benchmarks.load("prompt_file", path=str(tmp_path / "x.xml"))


def test_sha256_mismatch_names_the_file(shared_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("T2IBENCH_CACHE", str(tmp_path / "cache"))
    (tmp_path / "data" / "cc500").mkdir(parents=True)
    copy = tmp_path / "data" / "cc500" / "CC-500.txt"
    copy.write_bytes((shared_dir / "datasets" / "cc500" / "CC-500.txt").read_bytes() + b"one more line\n")
    with pytest.raises(T2IBenchError, match=r"CC-500.txt: sha256 [0-9a-f]{64} does not match the expected b36a39e8"):
        benchmarks.load("cc500", data_dir=str(tmp_path / "data"))
    accepted = benchmarks.load("cc500", data_dir=str(tmp_path / "data"), verify_sha256=False)
    assert (
        len(accepted) == 603 and accepted[0].metadata["source_sha256"] == hashlib.sha256(copy.read_bytes()).hexdigest()
    )


def test_malformed_dataset_line_names_file_and_line(shared_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("T2IBENCH_CACHE", str(tmp_path / "cache"))
    (tmp_path / "data" / "coco30k").mkdir(parents=True)
    original = (shared_dir / "datasets" / "coco30k" / "coco_30k.csv").read_text()
    (tmp_path / "data" / "coco30k" / "coco_30k.csv").write_text(original.replace(",41337\n", ",forty\n", 1))
    with pytest.raises(T2IBenchError, match=r"coco_30k.csv:2: column evaluation_seed: 'forty' is not a valid int"):
        benchmarks.load("coco30k", data_dir=str(tmp_path / "data"), verify_sha256=False)


def test_offline_without_a_local_copy_says_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.delenv("T2IBENCH_DATA_DIR", raising=False)
    monkeypatch.setenv("T2IBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(T2IBenchError) as info:
        benchmarks.load("i2p")
    message = str(info.value)
    assert "i2p/i2p_benchmark.csv is not available offline" in message
    assert (
        str(tmp_path / "cache" / "datasets" / "i2p" / "i2p_benchmark.csv") in message and "T2IBENCH_DATA_DIR" in message
    )
    assert "https://" in message and "t2ibench-data fetch i2p" in message


@pytest.fixture()
def http_server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_verifies_and_caches(http_server, tmp_path, monkeypatch):
    root, base = http_server
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("T2IBENCH_OFFLINE", raising=False)
    monkeypatch.delenv("T2IBENCH_DATA_DIR", raising=False)
    monkeypatch.setenv("T2IBENCH_CACHE", str(tmp_path / "cache"))
    (root / "good.txt").write_bytes(b"a cat\n")
    (root / "bad.txt").write_bytes(b"a dog\n")
    digest = hashlib.sha256(b"a cat\n").hexdigest()
    spec = DataFile("demo", "prompts.txt", digest, (f"{base}/missing.txt", f"{base}/bad.txt", f"{base}/good.txt"))
    found = resolve(spec)
    assert (
        found.verified
        and found.path == tmp_path / "cache" / "datasets" / "demo" / "prompts.txt"
        and found.path.read_bytes() == b"a cat\n"
    )
    (root / "good.txt").unlink()
    assert resolve(spec).path == found.path  # cached: no second download
    wrong = DataFile("demo2", "prompts.txt", digest, (f"{base}/bad.txt",))
    with pytest.raises(
        T2IBenchError, match=r"could not download demo2/prompts.txt: .*bad.txt: sha256 .* does not match"
    ):
        resolve(wrong)
    assert not (tmp_path / "cache" / "datasets" / "demo2" / "prompts.txt").exists()


def test_data_command_fetch_and_list(shared_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("T2IBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    names = ("i2p", "abc6k", "cc500", "attend_and_excite", "coco30k")
    assert data_main(["fetch", *names, "--data-dir", str(shared_dir / "datasets")]) == 0
    out = capsys.readouterr().out
    for name in names:
        assert f"{name}: " in out and " ok " in out
    # --only: some of a benchmark's files (shared/ holds GenAI-Bench's 527 prompts, not its 1,600 files or zips)
    only = ["fetch", "genai_bench", "--only", "*_527.json", "--data-dir", str(shared_dir / "datasets")]
    assert data_main([*only[:3], "genai_bench/genai_image_527.json", *only[4:]]) == 0
    assert "genai_bench/genai_image_527.json ok" in capsys.readouterr().out
    assert data_main(only) == 2  # the tag file of the 527 set is not in shared/
    assert "genai_skills_527.json is not available offline" in capsys.readouterr().err
    assert data_main(["fetch", "i2p"]) == 2
    assert "not available offline" in capsys.readouterr().err
    assert data_main(["fetch", "rolebench"]) == 0 and "no data files" in capsys.readouterr().out
    assert data_main(["fetch", "--experiment", "smoke"]) == 0 and "tiny: no data files" in capsys.readouterr().out
    assert data_main(["fetch", "nope"]) == 2 and "valid benchmarks" in capsys.readouterr().err
    assert data_main(["list", "--data-dir", str(shared_dir / "datasets")]) == 0
    assert capsys.readouterr().out.count("\tok ") == 6
