"""Version lifecycle: new versions under load, broken versions, lost base paths, labels."""

import shutil
import threading
import time

import grpc
import pytest

from recsys_base.tf_compat import tensorflow
from serving import contract
from serving.client import RecommenderClient, ServingError
from serving.deployment import DeploymentConfig, models_config_text, write_configs
from serving.server import ServerConfig, serve
from serving.testing import expected_top_k, export_toy_models

tf = tensorflow()
from google.protobuf import text_format  # noqa: E402
from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc  # noqa: E402
from tensorflow_serving.config import model_server_config_pb2  # noqa: E402

MODEL = contract.RECOMMEND_MODEL


def _serve(tmp_path, **deployment):
    models = tmp_path / "models"
    export_toy_models(models, version=1, models=(MODEL,))
    configs = write_configs(DeploymentConfig(model_base=str(models), models=(MODEL,), **deployment), tmp_path / "config")
    config = ServerConfig(configs["models.config"], model_base=models, port=0, poll_seconds=0.1, config_poll_seconds=0.1,
                          allow_config_reload=True)
    return serve(config), models


def _drop_version(models, version, tmp_path):
    """Exports ``version`` aside and moves it into place in one rename, as exporters should."""
    staging = tmp_path / f"staging-{version}"
    export_toy_models(staging, version=version, models=(MODEL,))
    (staging / MODEL / str(version)).rename(models / MODEL / str(version))


def _wait_for(condition, timeout_s=60.0):
    give_up = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < give_up, "condition not reached in time"
        time.sleep(0.05)


def _states(client):
    return {status.version: (status.state, status.error_code) for status in client.status(MODEL)}


def test_a_new_version_is_picked_up_under_load_with_no_failed_request(tmp_path):
    handle, models = _serve(tmp_path, version_policy="latest", num_versions=1)
    client = RecommenderClient([f"127.0.0.1:{handle.port}"], deadline_s=10.0)
    stop, failures, versions = threading.Event(), [], []

    def load():
        while not stop.is_set():
            try:
                versions.append(client.predict(MODEL, _inputs()).version)
            except ServingError as error:
                failures.append(error)

    workers = [threading.Thread(target=load) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        _drop_version(models, 2, tmp_path)
        _wait_for(lambda: _states(client).get(1, ("",))[0] == "END")
        count = len(versions)
        _wait_for(lambda: len(versions) > count + 20)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    assert failures == []
    assert versions[0] == 1 and versions[-1] == 2 and set(versions) == {1, 2}
    assert _states(client) == {1: ("END", "OK"), 2: ("AVAILABLE", "OK")}
    assert client.recommend(["item-001"], k=3) == expected_top_k(50, 2, 3)
    client.close()
    handle.stop()


def test_a_broken_version_is_reported_while_the_previous_keeps_serving(tmp_path):
    handle, models = _serve(tmp_path, version_policy="latest", num_versions=1)
    client = RecommenderClient([f"127.0.0.1:{handle.port}"], deadline_s=10.0)
    broken = models / MODEL / "2"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"half-written")
    _wait_for(lambda: _states(client).get(2, ("",))[0] == "END")
    status = {s.version: s for s in client.status(MODEL)}[2]
    assert (status.error_code, status.error_message.split(":")[0]) == ("UNKNOWN", "DecodeError")
    assert _states(client)[1] == ("AVAILABLE", "OK")
    assert client.recommend(["item-001"], k=2) == expected_top_k(50, 1, 2)

    shutil.rmtree(broken)  # the exporter retries: the fixed version loads
    _drop_version(models, 2, tmp_path)
    _wait_for(lambda: _states(client).get(2) == ("AVAILABLE", "OK"))
    assert client.recommend(["item-001"], k=2) == expected_top_k(50, 2, 2)
    client.close()
    handle.stop()


def test_a_vanished_base_path_keeps_the_loaded_version_serving(tmp_path):
    handle, models = _serve(tmp_path, version_policy="latest")
    client = RecommenderClient([f"127.0.0.1:{handle.port}"], deadline_s=10.0)
    (models / MODEL).rename(models / "elsewhere")
    time.sleep(0.5)  # several polls fail to list the base path
    assert client.recommend(["item-001"], k=2) == expected_top_k(50, 1, 2)
    assert _states(client) == {1: ("AVAILABLE", "OK")}
    client.close()
    handle.stop()


def test_labels_route_to_their_versions_and_move_on_reload(tmp_path):
    handle, models = _serve(tmp_path, num_versions=2, stable_version=1, canary_version=2)
    _drop_version(models, 2, tmp_path)
    target = f"127.0.0.1:{handle.port}"
    with RecommenderClient([target], deadline_s=10.0) as client:
        _wait_for(lambda: _states(client).get(2) == ("AVAILABLE", "OK"))
    with RecommenderClient([target], version_label=contract.STABLE_LABEL) as stable:
        assert stable.predict(MODEL, _inputs()).version == 1
    with RecommenderClient([target], version_label=contract.CANARY_LABEL) as canary:
        assert canary.predict(MODEL, _inputs()).version == 2

    promoted = DeploymentConfig(model_base=str(models), models=(MODEL,), stable_version=2)
    request = model_management_pb2.ReloadConfigRequest()
    text_format.Parse(models_config_text(promoted), request.config)
    channel = grpc.insecure_channel(target)
    model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(request, timeout=30)
    channel.close()
    with RecommenderClient([target], version_label=contract.STABLE_LABEL) as stable:
        assert stable.predict(MODEL, _inputs()).version == 2
    with RecommenderClient([target], version_label=contract.CANARY_LABEL) as canary:
        with pytest.raises(ServingError, match="Unrecognized servable version label: canary"):
            canary.predict(MODEL, _inputs())
    handle.stop()


def test_an_edited_models_config_is_applied_and_a_broken_edit_ignored(tmp_path):
    handle, models = _serve(tmp_path, stable_version=1)
    config_file = tmp_path / "config" / "models.config"
    target = f"127.0.0.1:{handle.port}"
    config_file.write_text("model_config_list { config { name: 'recommend' base_path: '/etc' } }")
    time.sleep(0.5)  # rejected: outside the model base; the old config stays
    with RecommenderClient([target], version_label=contract.CANARY_LABEL) as canary:
        config_file.write_text(models_config_text(DeploymentConfig(model_base=str(models), models=(MODEL,), canary_version=1)))
        _wait_for(lambda: _answers(canary))
        assert canary.predict(MODEL, _inputs()).version == 1
    handle.stop()


def _answers(client) -> bool:
    try:
        client.predict(MODEL, _inputs())
    except ServingError:
        return False
    return True


def test_config_errors_name_the_problem(tmp_path):
    from recsys_base.errors import ConfigError
    from serving.server.manager import model_entries

    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.config.add(name="a/../b", base_path="x")
    with pytest.raises(ConfigError, match="model name 'a/../b'"):
        model_entries(config, tmp_path)
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.config.add(name="m", base_path="/etc")
    with pytest.raises(ConfigError, match="outside the model base"):
        model_entries(config, tmp_path)


def _inputs():
    from serving.testing import toy_request

    return toy_request(MODEL)
