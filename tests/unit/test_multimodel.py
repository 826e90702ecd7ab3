"""The multi-model registry and its shared index, with a stand-in handler factory.

Two registries on one index directory play two gunicorn workers: what one loads, unloads or
reloads, the other sees.  The HTTP API on a real server is in
tests/integration/test_serve_multimodel.py.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from byoc import memory_limit
from byoc.errors import ConfigError, ModelLoadError, UserError
from byoc.serving import multimodel
from byoc.serving.multimodel import (
    InsufficientMemory,
    ModelAlreadyLoaded,
    ModelIndex,
    ModelNotFound,
    ModelNotLoaded,
    ModelRegistry,
    ModelRejected,
)

KIB = 1024


class Handler:
    def __init__(self, path: Path) -> None:
        text = (path / "value.txt").read_text()
        if text == "corrupt":
            raise ValueError("value.txt is corrupt")
        if text == "unverified":
            raise ModelLoadError(f"{path}/model.joblib fails its checksum: copy the model again")
        if text == "misconfigured":
            raise ConfigError("SAGEMAKER_PROGRAM='x.py': no such file")
        self.value = text
        self.path = path

    def warm_up(self) -> None:
        """Predicts: the loader's warm-up check passes."""


def model(tmp_path: Path, name: str, value: str | None = None, size: int = 10 * KIB) -> str:
    directory = tmp_path / "models" / name / "model"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "value.txt").write_text(value if value is not None else name)
    (directory / "ballast.bin").write_bytes(b"\0" * size)
    return str(directory)


def registry(tmp_path: Path, budget: int = 100 * KIB, **kwargs) -> ModelRegistry[Handler]:
    return ModelRegistry(
        ModelIndex(tmp_path / "index"),
        Handler,
        budget,
        size_of=lambda p: sum(f.stat().st_size for f in multimodel.model_files(p)),
        **kwargs,
    )


def test_load_invoke_unload_reload(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    url = model(tmp_path, "a")
    entry = reg.load("a", url)
    assert entry.describe() == {"modelName": "a", "modelUrl": url}
    assert reg.handler("a").value == "a"
    with pytest.raises(ModelAlreadyLoaded):
        reg.load("a", url)
    reg.unload("a")
    with pytest.raises(ModelNotLoaded):
        reg.handler("a")
    with pytest.raises(ModelNotLoaded):
        reg.unload("a")
    with pytest.raises(ModelNotLoaded):
        reg.describe("a")
    reg.load("a", model(tmp_path, "a2", value="second"))
    assert reg.handler("a").value == "second"


def test_second_worker_loads_on_demand_and_follows_unload_and_reload(tmp_path: Path) -> None:
    first, second = registry(tmp_path), registry(tmp_path)
    first.load("a", model(tmp_path, "a"))
    assert second.cached_names() == []
    assert second.handler("a").value == "a"  # loaded on first use in the other worker
    with pytest.raises(ModelAlreadyLoaded):
        second.load("a", model(tmp_path, "a"))
    first.unload("a")
    with pytest.raises(ModelNotLoaded):
        second.handler("a")
    first.load("a", model(tmp_path, "other", value="v2"))
    assert second.handler("a").value == "v2"  # never the stale copy of the first load


def test_unload_elsewhere_frees_this_workers_copy_on_its_next_sync(tmp_path: Path) -> None:
    first, second = registry(tmp_path), registry(tmp_path)
    first.load("a", model(tmp_path, "a"))
    first.load("b", model(tmp_path, "b"))
    second.handler("a")
    second.handler("b")
    first.unload("a")
    second.sync()
    assert second.cached_names() == ["b"]


def test_every_copy_a_worker_drops_is_released_and_before_its_next_load(tmp_path: Path) -> None:
    """The cache dropped handlers (an unload, an eviction, a copy another worker's unload made
    stale) without a word to them, so a model's inference code stayed in the worker's sys.path and
    sys.modules for every model loaded after it; and a load in a worker that had not synced since
    another worker's unload ran while the unloaded model's copy was still held."""
    released: list[tuple[str, str]] = []
    started: dict[str, list[tuple[str, str]]] = {}

    def worker(name: str) -> ModelRegistry[Handler]:
        def factory(path: Path) -> Handler:
            started[f"{name}:{path.parent.name}"] = list(released)
            return Handler(path)

        return ModelRegistry(
            ModelIndex(tmp_path / "index"),
            factory,
            25 * KIB,  # two models of 10 KiB
            size_of=lambda p: sum(f.stat().st_size for f in multimodel.model_files(p)),
            release=lambda handler: released.append((name, handler.value)),
        )

    first, second = worker("first"), worker("second")
    first.load("a", model(tmp_path, "a"))
    assert second.handler("a").value == "a"
    first.unload("a")
    assert released == [("first", "a")]
    second.load("b", model(tmp_path, "b"))  # within the 2 s its requests trust its cache
    assert started["second:b"] == [("first", "a"), ("second", "a")]
    second.load("c", model(tmp_path, "c"))
    second.load("d", model(tmp_path, "d"))  # evicts b
    assert released[2:] == [("second", "b")]
    second.unload("c")
    assert released[3:] == [("second", "c")]


@pytest.mark.parametrize("settle", [50_000_000, 10**15])
def test_trusted_cache_and_entry_reads_agree(tmp_path: Path, monkeypatch, settle: int) -> None:
    """Once the index has settled (50 ms here, after each change) a worker answers from its cache
    without reading the model's entry; never settled, it reads the entry every time: both see
    every unload and reload."""
    monkeypatch.setattr(multimodel, "SETTLE_NS", settle)
    first, second = registry(tmp_path), registry(tmp_path)

    def change(action, *args) -> None:
        action(*args)
        time.sleep(0.06)

    change(first.load, "a", model(tmp_path, "a"))
    assert second.handler("a").value == "a"
    assert second.handler("a").value == "a"
    change(first.unload, "a")
    with pytest.raises(ModelNotLoaded):
        second.handler("a")
    change(first.load, "a", model(tmp_path, "a-v2", value="v2"))
    assert second.handler("a").value == "v2"
    reads: list[str] = []
    read = second.index.get
    monkeypatch.setattr(second.index, "get", lambda name: reads.append(name) or read(name))
    assert second.handler("a").value == "v2"
    assert reads == ([] if settle < 10**9 else ["a"])  # the trusted path reads nothing
    first.unload("a")
    change(first.load, "a", model(tmp_path, "a-v3", value="v3"))
    assert second.handler("a").value == "v3"


def test_lru_eviction_keeps_the_budget_and_the_index(tmp_path: Path) -> None:
    reg = registry(tmp_path, budget=35 * KIB)  # three 10 KiB models (+ their value files)
    for name in "abc":
        reg.load(name, model(tmp_path, name))
    reg.handler("a")  # a is now the most recently used: b goes first
    reg.load("d", model(tmp_path, "d"))
    assert reg.cached_names() == ["c", "a", "d"]
    assert reg.used_bytes <= reg.budget
    assert [e.name for e in reg.index.entries()] == ["a", "b", "c", "d"]
    assert reg.handler("b").value == "b"  # evicted, still loaded: read again on demand
    assert reg.used_bytes <= reg.budget
    assert "b" in reg.cached_names() and len(reg.cached_names()) == 3


class Inflating(Handler):
    """A model that takes far more memory once loaded than its files hold (a compressed pickle
    read by a user's model_fn), as handler.load measures it."""

    memory_bytes = 30 * KIB


def test_what_a_load_took_in_memory_counts_when_it_beats_the_files_estimate(tmp_path: Path) -> None:
    """Models of a few bytes on disk that took 30 KiB each once loaded all stayed cached under
    a 70 KiB budget (in a real worker: 400 MB of models under a 200 MB budget, no eviction)."""
    reg = ModelRegistry(
        ModelIndex(tmp_path / "index"),
        Inflating,
        70 * KIB,
        size_of=lambda p: sum(f.stat().st_size for f in multimodel.model_files(p)),
    )
    for name in "abcd":
        reg.load(name, model(tmp_path, name, size=0))
    assert reg.cached_names() == ["c", "d"]
    assert reg.used_bytes == 60 * KIB


def test_a_model_that_took_more_than_the_budget_once_loaded_is_refused_and_evicts_nothing(
    tmp_path: Path,
) -> None:
    """Kept, a model that took 30 KiB under a 20 KiB budget evicted every other model and still
    passed the budget (a 200, where README promises a 507)."""
    reg = ModelRegistry(
        ModelIndex(tmp_path / "index"),
        lambda p: Inflating(p) if p.parent.name == "big" else Handler(p),
        20 * KIB,
        size_of=lambda p: sum(f.stat().st_size for f in multimodel.model_files(p)),
    )
    reg.load("small", model(tmp_path, "small", size=0))
    with pytest.raises(InsufficientMemory, match=r"'big' took .* once loaded"):
        reg.load("big", model(tmp_path, "big", size=0))
    assert reg.index.get("big") is None
    assert reg.cached_names() == ["small"]


def test_507_only_when_the_model_alone_does_not_fit(tmp_path: Path) -> None:
    reg = registry(tmp_path, budget=35 * KIB)
    for name in "abc":
        reg.load(name, model(tmp_path, name))
    with pytest.raises(InsufficientMemory, match=r"big.*run fewer workers \(SAGEMAKER_MODEL_SERVER_WORKERS"):
        reg.load("big", model(tmp_path, "big", size=40 * KIB))
    assert reg.index.get("big") is None
    reg.load("fits", model(tmp_path, "fits", size=30 * KIB))
    assert reg.cached_names() == ["fits"]


def test_missing_and_corrupt_models(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    with pytest.raises(ModelNotFound):
        reg.load("x", str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFound):
        reg.load("x", str(tmp_path / "empty"))
    with pytest.raises(ModelRejected, match="value.txt is corrupt"):
        reg.load("x", model(tmp_path, "x", value="corrupt"))
    assert reg.index.entries() == [] and reg.cached_names() == []
    with pytest.raises(multimodel.UserError, match="absolute"):
        reg.load("x", "relative/path")
    with pytest.raises(multimodel.UserError, match="local directories"):
        reg.load("x", "s3://bucket/model.tar.gz")
    with pytest.raises(multimodel.UserError, match="model_name"):
        reg.load("", model(tmp_path, "y"))
    assert reg.load("y", "file://" + model(tmp_path, "y")).name == "y"


def test_links_in_a_model_folder_are_not_followed_and_one_leading_out_is_named(tmp_path: Path) -> None:
    """The url may be a symbolic link (SageMaker's own path to the model); below it no link is
    followed: a link to a large tree (or a url of /proc/self, whose ``root`` is ``/``) was walked
    whole before the load could be refused.  A link within the folder is passed by (its target is
    counted where it is, a loop ends), one leading out of it is refused naming it, as the loader
    would read through it; a url that links to nothing says so."""
    reg = registry(tmp_path)
    real = Path(model(tmp_path, "real"))
    (real / "loop").symlink_to(real)
    (real / "again.txt").symlink_to("value.txt")
    (tmp_path / "url").symlink_to(real)
    for url in (real, tmp_path / "url"):
        assert sorted(f.name for f in multimodel.model_files(url)) == ["ballast.bin", "value.txt"]
    assert reg.load("via-link", str(tmp_path / "url")).name == "via-link"
    (tmp_path / "linked").mkdir()
    (tmp_path / "linked" / "model").symlink_to(real)  # a model folder leading out of the url's
    (tmp_path / "tree" / "deep").mkdir(parents=True)
    (tmp_path / "tree" / "deep" / "file.bin").write_bytes(b"\0" * KIB)
    (real / "code").mkdir()
    (real / "code" / "data").symlink_to(tmp_path / "tree")  # a folder of the model leading out
    (real / "code" / "value.txt").symlink_to(tmp_path / "tree" / "deep" / "file.bin")  # a file
    for url, link, target in [
        (tmp_path / "linked", tmp_path / "linked" / "model", real),
        (real, real / "code" / "data", tmp_path / "tree"),
    ]:
        with pytest.raises(ModelRejected) as refused:
            reg.load("out", str(url))
        assert f"{link} is a symbolic link to {target.resolve()}, outside the model directory" in str(
            refused.value
        )
    (real / "code" / "data").unlink()
    with pytest.raises(ModelRejected, match=r"code/value\.txt is a symbolic link to .*file\.bin, outside"):
        reg.load("out", str(real))
    assert [e.name for e in reg.index.entries()] == ["via-link"]
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    with pytest.raises(ModelNotFound, match="is a symbolic link to .*gone, which does not exist"):
        reg.load("dangling", str(tmp_path / "dangling"))


def test_urls_the_file_system_or_the_url_rules_refuse_are_client_errors(tmp_path: Path) -> None:
    """A path longer than the file system takes was a 500 (OSError from the directory check), and
    a file URL with a host silently loaded another path (file://models/x is /x, on host models)."""
    reg = registry(tmp_path)
    with pytest.raises(ModelNotFound, match="File name too long"):
        reg.load("x", "/" + "a" * 5000)
    with pytest.raises(multimodel.UserError, match="file:///opt/ml/models/x") as caught:
        reg.load("x", "file://opt/ml/models/x")
    assert caught.value.code == "bad_url"
    assert reg.load("y", "file://localhost" + model(tmp_path, "y")).name == "y"
    assert reg.index.entries()[0].url == "file://localhost" + model(tmp_path, "y")


def test_pages_cover_every_model_once(tmp_path: Path) -> None:
    reg = registry(tmp_path, budget=10_000 * KIB)
    names = [f"m{i:02d}" for i in range(23)] + ["name/with/slashes", "ünïcode"]
    for name in names:
        reg.load(name, model(tmp_path, f"d{len(name)}{abs(hash(name))}", size=10))
    seen, token = [], None
    while True:
        page, token = reg.page(10, token)
        assert len(page) <= 10
        seen += [e.name for e in page]
        if token is None:
            break
    assert seen == sorted(names)
    with pytest.raises(multimodel.UserError, match="next_page_token"):
        reg.page(10, "!!not-a-token!!")


def test_racing_loads_of_one_name_have_one_winner(tmp_path: Path) -> None:
    workers = [registry(tmp_path) for _ in range(8)]
    url = model(tmp_path, "a")
    outcomes: list[str] = []
    barrier = threading.Barrier(len(workers))

    def load(reg: ModelRegistry[Handler]) -> None:
        barrier.wait()
        try:
            reg.load("a", url)
            outcomes.append("loaded")
        except ModelAlreadyLoaded:
            outcomes.append("409")

    threads = [threading.Thread(target=load, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["409"] * 7 + ["loaded"]
    assert sum("a" in w.cached_names() for w in workers) == 1


def test_losers_of_a_race_in_one_worker_neither_load_nor_evict(tmp_path: Path, monkeypatch) -> None:
    """Six loads of one new name reach a worker holding two warm models at once (room for two):
    the winner evicts the least recently used one to load it once; the losers, which waited for
    the load lock, get their 409 without loading it again or evicting anything."""
    loads: list[str] = []
    arrived = threading.Semaphore(0)
    racers = 6

    class CountingLock:
        """The registry's load lock, counting who reached it."""

        def __init__(self) -> None:
            self.lock = threading.Lock()

        def __enter__(self) -> None:
            arrived.release()
            self.lock.acquire()

        def __exit__(self, *exc: object) -> None:
            self.lock.release()

    def factory(path: Path) -> Handler:
        loads.append(path.parent.name)
        if loads.count("race") == 1:  # the first load: every racer is past the first check by now
            for _ in range(racers):
                assert arrived.acquire(timeout=30)
        return Handler(path)

    reg = ModelRegistry(
        ModelIndex(tmp_path / "index"),
        factory,
        25 * KIB,
        size_of=lambda p: sum(f.stat().st_size for f in multimodel.model_files(p)),
    )
    monkeypatch.setattr(reg, "_load_lock", CountingLock())
    for name in ("m1", "m2"):
        reg.load(name, model(tmp_path, name))
    for _ in range(2):
        assert arrived.acquire(timeout=1)  # the two loads above reached the lock too
    url = model(tmp_path, "race")
    outcomes: list[str] = []

    def load() -> None:
        try:
            reg.load("race", url)
            outcomes.append("loaded")
        except ModelAlreadyLoaded:
            outcomes.append("409")

    threads = [threading.Thread(target=load) for _ in range(racers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["409"] * (racers - 1) + ["loaded"]
    assert loads == ["m1", "m2", "race"]
    assert reg.cached_names() == ["m2", "race"]  # m1, the least recently used, made room once


def test_container_memory_prefers_the_cgroup_limit(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16384000 kB\nMemFree: 1 kB\n")
    v2, v1 = tmp_path / "memory.max", tmp_path / "limit_in_bytes"
    v2.write_text("2147483648\n")
    assert memory_limit.container_memory_bytes(cgroup_v2=v2, cgroup_v1=v1, meminfo=meminfo) == 2 << 30
    v2.write_text("max\n")
    v1.write_text("1073741824\n")
    assert memory_limit.container_memory_bytes(cgroup_v2=v2, cgroup_v1=v1, meminfo=meminfo) == 1 << 30
    v1.write_text("9223372036854771712\n")  # cgroup v1's "no limit"
    assert memory_limit.container_memory_bytes(cgroup_v2=v2, cgroup_v1=v1, meminfo=meminfo) == 16384000 * 1024
    v2.write_text(str(64 << 30))  # a limit above the host's memory is no limit
    assert memory_limit.container_memory_bytes(cgroup_v2=v2, cgroup_v1=v1, meminfo=meminfo) == 16384000 * 1024


def test_budget_is_the_setting_or_a_share_of_the_container() -> None:
    assert multimodel.memory_budget(300, container_bytes=8 << 30) == 300 << 20
    assert multimodel.memory_budget(None, container_bytes=8 << 30) == 4 << 30
    assert multimodel.memory_budget(None) > 0


def test_a_model_whose_files_vanished_is_unloaded_so_it_can_be_loaded_again(tmp_path: Path) -> None:
    first, second = registry(tmp_path), registry(tmp_path)
    url = model(tmp_path, "a")
    first.load("a", url)
    shutil.rmtree(url)
    with pytest.raises(ModelNotLoaded, match="no longer"):
        second.handler("a")  # this worker never held it: its on-demand load finds nothing
    assert first.index.get("a") is None
    model(tmp_path, "a")
    first.load("a", url)  # not a 409
    assert second.handler("a").value == "a"


@pytest.mark.parametrize("then", ["unloaded", "reloaded"])
def test_a_load_whose_model_is_unloaded_meanwhile_and_its_files_go_is_a_404_not_bad_model(
    tmp_path: Path, then: str
) -> None:
    """An invocation reaching a worker without a copy read the index entry, then loaded the files; an
    unload elsewhere meanwhile, after which SageMaker deletes or replaces them, made its load fail
    (FileNotFoundError from the model's own loader) and the client got a 400 bad_model blaming a model
    that is fine: a 404 model_not_loaded, as for any invocation after the unload, has SageMaker load
    it and retry."""
    first = registry(tmp_path)
    url = model(tmp_path, "a")
    first.load("a", url)

    def unloaded_meanwhile(path: Path) -> Handler:
        first.unload("a")
        (path / "value.txt").unlink()  # removed by SageMaker once unloaded; model.joblib in a real one
        if then == "reloaded":
            first.load("a", model(tmp_path, "b"))
        return Handler(path)

    second = ModelRegistry(first.index, unloaded_meanwhile, first.budget, size_of=first.size_of)
    with pytest.raises(ModelNotLoaded, match="unloaded while this worker loaded it"):
        second.handler("a")
    assert second.cached_names() == []
    if then == "reloaded":
        assert first.handler("a").value == "b"


def test_discard_keeps_a_newer_load(tmp_path: Path) -> None:
    index = ModelIndex(tmp_path / "index")
    old = index.add("a", "/x")
    index.remove("a")
    new = index.add("a", "/y")
    index.discard(old)
    assert index.get("a") == new
    index.discard(new)
    assert index.get("a") is None


def test_models_with_requirements_load_under_a_lock_all_workers_share(tmp_path: Path, monkeypatch) -> None:
    import fcntl

    from byoc.serving import multimodel_app
    from byoc.serving.settings import ServingSettings

    lock = tmp_path / "install.lock"
    held: dict[str, bool] = {}
    servers: list[object] = []

    def fake_load(model_dir: Path, settings, environ, modules) -> Handler:
        servers.append(modules)
        with open(lock, "a+b") as other:  # another worker's attempt, without waiting
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held[model_dir.parent.name] = False
                fcntl.flock(other, fcntl.LOCK_UN)
            except BlockingIOError:
                held[model_dir.parent.name] = True
        return Handler(model_dir)

    monkeypatch.setattr(multimodel_app.handlers, "load", fake_load)
    factory = multimodel_app.handler_factory(ServingSettings(), {}, lock)
    plain, with_requirements = Path(model(tmp_path, "plain")), Path(model(tmp_path, "pip"))
    (with_requirements / "code").mkdir()
    (with_requirements / "code" / "requirements.txt").write_text("joblib\n")
    for path in (plain, with_requirements):
        factory(path)
    assert held == {"plain": False, "pip": True}
    # one record of the programs imported for the worker's models: each gets its own helpers
    assert servers[0] is servers[1] and isinstance(servers[0], multimodel_app.hooks.UserModules)


@pytest.mark.parametrize(
    "value,said,traceback",
    [
        ("unverified", "model.joblib fails its checksum: copy the model again", False),
        ("misconfigured", "SAGEMAKER_PROGRAM='x.py': no such file", False),
        ("corrupt", "value.txt is corrupt", True),
    ],
)
def test_a_refused_load_logs_one_line_for_a_user_error_and_a_traceback_for_anything_else(
    tmp_path: Path, caplog, value: str, said: str, traceback: bool
) -> None:
    """Was a WARNING with a full traceback for every refused load, though a user error's message
    already says what is wrong and the client has it in its 400."""
    reg = registry(tmp_path)
    with caplog.at_level("WARNING", logger="byoc"), pytest.raises(ModelRejected, match=said):
        reg.load("x", model(tmp_path, "x", value=value))
    (record,) = [r for r in caplog.records if r.levelname == "WARNING"]
    assert record.getMessage().startswith("model 'x' at ")
    assert (record.exc_info is not None) is traceback
    assert said in (str(record.exc_info[1]) if record.exc_info else record.getMessage())


def test_the_name_limit_follows_the_request_line_serve_keeps() -> None:
    """A name is refused when its URL spelling would not fit gunicorn's request line (414 on every
    call naming it): the limit must be the one serve runs with."""
    from gunicorn.config import LimitRequestLine

    from byoc.serving.server import gunicorn_options
    from byoc.serving.settings import ServingSettings

    options = gunicorn_options(ServingSettings.from_environ({"SAGEMAKER_MULTI_MODEL": "true"}))
    assert options.get("limit_request_line", LimitRequestLine.default) == multimodel.MAX_REQUEST_LINE
    longest = "\u00e9" * (multimodel.MAX_URL_NAME_BYTES // 6)
    assert multimodel.check_name(longest) == longest
    with pytest.raises(UserError, match="request line"):
        multimodel.check_name(longest + "\u00e9")


@pytest.mark.parametrize("control", ["\x00", "\x1f", "\x7f", "\x85", "\x9f"])
def test_a_name_holding_any_control_character_is_refused(control: str) -> None:
    """DEL and the C1 controls (U+0080-U+009F) passed the check of characters below 32: a name
    that prints as another, or moves the text of the log line that names it."""
    with pytest.raises(UserError) as refused:
        multimodel.check_name(f"model{control}a")
    assert refused.value.code == "bad_model_name"
    assert multimodel.check_name("mod\u00e8le-\u00a0a") == "mod\u00e8le-\u00a0a"  # letters, a no-break space


def test_an_invocation_between_a_loads_cache_and_its_index_entry_leaves_the_loading_copy(
    tmp_path: Path, monkeypatch
) -> None:
    """POST /models caches its handler, then writes the index entry: an invocation of the same name
    in between (another thread of the worker) saw no entry and dropped the cache's copy whatever its
    token, closing the handler being loaded (its code folders off sys.path), which the load then
    published anyway.  The invocation is a 404; the load's copy stays, open, and answers."""
    released: list[str] = []
    reg = registry(tmp_path, release=lambda handler: released.append(handler.value))
    cached, invoked = threading.Event(), threading.Event()
    outcome: list[str] = []
    add = reg.index.add

    def add_after_an_invocation(name: str, url: str):
        cached.set()  # the load's copy is in the cache, its entry not yet written
        assert invoked.wait(30)
        return add(name, url)

    def invoke() -> None:
        assert cached.wait(30)
        try:
            reg.handler("a")
            outcome.append("answered")
        except ModelNotLoaded:
            outcome.append("404")
        finally:
            invoked.set()

    monkeypatch.setattr(reg.index, "add", add_after_an_invocation)
    invoker = threading.Thread(target=invoke)
    invoker.start()
    reg.load("a", model(tmp_path, "a"))
    invoker.join(30)
    assert outcome == ["404"]
    assert released == []  # the copy the load published was never closed
    assert reg.cached_names() == ["a"]
    assert reg.handler("a").value == "a"
    reg.unload("a")
    assert released == ["a"]
