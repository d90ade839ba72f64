"""The HTTP predictor without a network: config files, parsing, retries, secrets, limits.

Requests go to an ``httpx.MockTransport``; waits go to a recorder instead of
``time.sleep`` and the rate limiter runs on a fake clock, so nothing here waits.
"""

from __future__ import annotations

import base64
import json
import logging
import pickle
import textwrap
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from numpy.typing import NDArray

from brittle.errors import ConfigError, ModelError, ModelUnavailableError
from brittle.models import load_predictor, predictor_kind
from brittle.models.http import (
    ROBOFLOW,
    HttpPredictor,
    MalformedResponseError,
    RateLimiter,
    ResponseSpec,
    load_http_config,
    parse_detections,
    parse_retry_after,
    redact,
    to_xyxy,
)

KEY = "rf_S3cr3t+key/=="
ENV = {"ROBOFLOW_API_KEY": KEY, "MY_TOKEN": KEY}
NAMES = ["person", "car", "dog"]
IMAGE = np.zeros((50, 100, 3), np.uint8)

ROBOFLOW_CONFIG = """\
url: https://detect.example.test/css/3
format: roboflow
class_names: [person, car, dog]
request:
  params: {confidence: 1, overlap: 50}
retries: 3
"""


def write(tmp_path: Path, text: str, name: str = "m.http.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


Handler = Callable[[httpx.Request], httpx.Response]


def make(
    tmp_path: Path,
    handler: Handler,
    text: str = ROBOFLOW_CONFIG,
    *,
    sleeps: list[float] | None = None,
    **kwargs: Any,
) -> HttpPredictor:
    """A predictor on ``handler``, sleeping into ``sleeps`` instead of waiting."""
    recorded = sleeps if sleeps is not None else []
    return HttpPredictor.from_file(
        write(tmp_path, text),
        environ=ENV,
        transport=httpx.MockTransport(handler),
        sleep=recorded.append,
        **kwargs,
    )


def roboflow_answer(*preds: tuple[float, float, float, float, str, float]) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "predictions": [
                {"x": x, "y": y, "width": w, "height": h, "class": c, "confidence": s}
                for x, y, w, h, c, s in preds
            ]
        },
    )


def sent_image(request: httpx.Request) -> NDArray[np.uint8]:
    """The RGB image in a base64 request body."""
    png = np.frombuffer(base64.b64decode(request.content), np.uint8)
    bgr = cv2.imdecode(png, cv2.IMREAD_COLOR)
    assert bgr is not None
    return np.asarray(bgr[:, :, ::-1], np.uint8)


def one_car(request: httpx.Request) -> httpx.Response:
    return roboflow_answer((50, 25, 20, 10, "car", 0.9))


# --- config files ---------------------------------------------------------------------


def test_roboflow_defaults(tmp_path: Path) -> None:
    config = load_http_config(write(tmp_path, ROBOFLOW_CONFIG))
    assert (config.api_key_env, config.api_key_param) == ("ROBOFLOW_API_KEY", "api_key")
    assert (config.concurrency, config.retries, config.request.mode) == (4, 3, "base64")
    assert config.request.image_format == "png"
    assert config.mapping == ROBOFLOW


def test_unknown_key_is_refused_with_file_and_location(tmp_path: Path) -> None:
    path = write(tmp_path, ROBOFLOW_CONFIG + "concurency: 8\nrequest_mode: x\n")
    with pytest.raises(ConfigError) as err:
        load_http_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}: 2 problems")
    assert "concurency: Extra inputs are not permitted" in message
    assert "request_mode: Extra inputs are not permitted" in message


def test_nested_problems_have_their_location(tmp_path: Path) -> None:
    text = """\
        url: https://x.test/m
        format: generic
        class_names: [a]
        request: {mode: multipart, image_format: webp}
        response: {box: bbox, box_format: ltrb, class: label, score: score, colour: red}
    """
    with pytest.raises(ConfigError) as err:
        load_http_config(write(tmp_path, text))
    message = str(err.value)
    assert "request.image_format: Input should be 'png' or 'jpeg'" in message
    assert "response.box_format: Input should be 'xyxy', 'xywh' or 'cxcywh'" in message
    assert "response.colour: Extra inputs are not permitted" in message


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("url: ftp://x.test/m\nformat: roboflow\nclass_names: [a]\n", r"url: must be an http"),
        ("url: https://x.test/m\nformat: generic\nclass_names: [a]\n", r"needs a `response:`"),
        (
            "url: https://x.test/m\nformat: roboflow\nclass_names: [a]\n"
            "response: {box: b, box_format: xyxy, class: c, score: s}\n",
            r"`response:` is for format: generic",
        ),
        (
            "url: https://x.test/m\nformat: roboflow\nclass_names: [a]\nrequest: {mode: url}\n",
            r"request.mode: mode 'url' .* no URL; use base64 or multipart",
        ),
        ("url: https://x.test/m\nformat: roboflow\nclass_names: [a]\nconcurrency: '4'\n", "valid"),
        ("url: https://x.test/m\nformat: roboflow\nclass_names: [a]\nretries: -1\n", "retries"),
        ("- a list\n", r"a mapping"),
        ("url: [unclosed\n", r"m\.http\.yaml:\d+:\d+: not valid YAML"),
        (
            "url: https://x.test/m\nformat: generic\nclass_names: [a]\napi_key_env: T\n"
            "response: {box: b, box_format: xyxy, class: c, score: s}\n",
            r"say where the key goes",
        ),
    ],
)
def test_invalid_configs(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_http_config(write(tmp_path, text))


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (f"api_key: {KEY}\n" + ROBOFLOW_CONFIG, "api_key"),
        (ROBOFLOW_CONFIG + "api_key_env: rfS3cr3tAbCd1234xYz9\n", "looks like an API key"),
        (
            ROBOFLOW_CONFIG.replace("css/3", f"css/3?auth={KEY}") + "api_key_param: auth\n",
            "url ?auth=",
        ),
        (ROBOFLOW_CONFIG.replace("overlap: 50}", f"overlap: 50, api_key: {KEY}}}"), "params"),
        (ROBOFLOW_CONFIG.replace("css/3", f"css/3?api_key={KEY}"), "url ?api_key="),
        (ROBOFLOW_CONFIG.replace("https://", "https://me:S3cr3t@"), "credentials"),
    ],
)
def test_a_key_written_in_the_config_is_refused_without_showing_it(
    tmp_path: Path, text: str, where: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_http_config(write(tmp_path, text))
    message = str(err.value)
    assert where in message
    assert "api_key_env" in message
    assert KEY not in message
    assert "S3cr3t" not in message


def test_missing_environment_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"environment variable ROBOFLOW_API_KEY, which is not"):
        HttpPredictor.from_file(write(tmp_path, ROBOFLOW_CONFIG), environ={})
    text = ROBOFLOW_CONFIG + "api_key_env: MY_MODEL_KEY\n"
    with pytest.raises(ConfigError, match=r"export MY_MODEL_KEY=<your key>"):
        HttpPredictor.from_file(write(tmp_path, text), environ={"ROBOFLOW_API_KEY": KEY})
    # An endpoint without a key (a local server) says so explicitly.
    text = ROBOFLOW_CONFIG + "api_key_env: null\n"
    assert HttpPredictor.from_file(write(tmp_path, text), environ={}).class_names == tuple(NAMES)


def test_class_names_from_a_file_beside_the_config(tmp_path: Path) -> None:
    (tmp_path / "names").mkdir()
    (tmp_path / "names" / "coco.names").write_text("person\ncar\n\n")
    text = ROBOFLOW_CONFIG.replace("[person, car, dog]", "names/coco.names")
    assert HttpPredictor.from_file(write(tmp_path, text), environ=ENV).class_names == (
        "person",
        "car",
    )
    with pytest.raises(ConfigError, match=r"lists 'car' twice"):
        HttpPredictor.from_file(write(tmp_path, ROBOFLOW_CONFIG.replace("dog", "car")), environ=ENV)


def test_routing_and_loader_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert predictor_kind("models/rf.http.yaml") == "http"
    assert predictor_kind("models/RF.HTTP.YML") == "http"
    assert predictor_kind("https://detect.roboflow.com/css/3") == "http"
    # A key in the URL is refused, and not shown.
    with pytest.raises(ConfigError) as err:
        load_predictor(f"https://detect.roboflow.com/css/3?api_key={KEY}", class_names=NAMES)
    assert "do not write API keys" in str(err.value)
    assert "api_key=***" in str(err.value)
    assert KEY not in str(err.value)

    monkeypatch.setenv("ROBOFLOW_API_KEY", KEY)
    path = write(tmp_path, ROBOFLOW_CONFIG)
    with pytest.warns(UserWarning, match=r"ignoring iou=0\.5: NMS runs on the server"):
        loaded = load_predictor(str(path), conf=0.001, max_det=300, iou=0.5, threads=2)
    assert loaded.kind == "http"
    assert isinstance(loaded.predictor, HttpPredictor)
    with pytest.raises(ConfigError, match=r"takes no letterbox option"):
        load_predictor(str(path), letterbox=False)
    with pytest.raises(ConfigError, match=r"HTTP model config does not exist"):
        load_predictor(str(tmp_path / "missing.http.yaml"))
    with pytest.raises(ConfigError, match=r"class names of an HTTP model are its config's"):
        load_predictor(str(path), class_names=NAMES)


def test_a_url_is_a_roboflow_model_with_the_datasets_class_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = "https://detect.example.test/css/3"
    with pytest.raises(ConfigError, match=r"this dataset has none.*NAME\.http\.yaml"):
        load_predictor(url)
    monkeypatch.delenv("ROBOFLOW_API_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"ROBOFLOW_API_KEY, which is not set"):
        load_predictor(url, class_names=NAMES)
    monkeypatch.setenv("ROBOFLOW_API_KEY", KEY)
    predictor = load_predictor(url, class_names=NAMES).predictor
    assert isinstance(predictor, HttpPredictor)
    assert predictor.class_names == tuple(NAMES)
    assert predictor.config.request.params == {"confidence": 1, "overlap": 50}
    # Workers rebuild it from the URL and the names; the key is read again, not pickled.
    clone = pickle.loads(pickle.dumps(predictor))
    assert clone.fingerprint == predictor.fingerprint
    assert KEY.encode() not in pickle.dumps(predictor)


# --- parsing --------------------------------------------------------------------------


def test_roboflow_response_centre_boxes_to_corners() -> None:
    body = json.dumps(
        {
            "time": 0.1,
            "image": {"width": 100, "height": 50},
            "predictions": [
                {"x": 50, "y": 25, "width": 20, "height": 10, "class": "car",
                 "confidence": 0.9, "class_id": 1, "detection_id": "x"},
                {"x": 5, "y": 5, "width": 20, "height": 20, "class": "dog", "confidence": 0.2},
            ],
        }
    ).encode()  # fmt: skip
    dets = parse_detections(body, ROBOFLOW, NAMES, 100, 50)
    assert dets.boxes.tolist() == [[40, 20, 60, 30], [0, 0, 15, 15]]  # the second clipped
    assert dets.labels.tolist() == [1, 2]
    assert dets.scores.tolist() == pytest.approx([0.9, 0.2])
    assert len(parse_detections(b'{"predictions": []}', ROBOFLOW, NAMES, 100, 50)) == 0


def generic(**fields: Any) -> ResponseSpec:
    base: dict[str, Any] = {"predictions": "result.detections", "box": "bbox", "class": "label",
                            "score": "score", "box_format": "xyxy"}  # fmt: skip
    return ResponseSpec.model_validate({**base, **fields})


@pytest.mark.parametrize(
    ("box", "fields"),
    [
        ([10, 20, 30, 60], {"box_format": "xyxy"}),
        ([10, 20, 20, 40], {"box_format": "xywh"}),
        ([20, 40, 20, 40], {"box_format": "cxcywh"}),
        ([0.1, 0.4, 0.3, 1.2], {"box_format": "xyxy", "normalized": True}),
        ([0.1, 0.4, 0.2, 0.8], {"box_format": "xywh", "normalized": True}),
        ([0.2, 0.8, 0.2, 0.8], {"box_format": "cxcywh", "normalized": True}),
    ],
)
def test_generic_box_formats(box: list[float], fields: dict[str, Any]) -> None:
    body = {"result": {"detections": [{"bbox": box, "label": "dog", "score": 0.5}]}}
    dets = parse_detections(json.dumps(body), generic(**fields), NAMES, 100, 50)
    # Normalised x scales by the width (100), y by the height (50); y2 clipped at 50.
    np.testing.assert_allclose(dets.boxes, [[10, 20, 30, 50]], rtol=1e-6)
    assert dets.labels.tolist() == [2]


def test_generic_field_paths_and_class_indices() -> None:
    mapping = generic(predictions="", box=["box.l", "box.t", "box.r", "box.b"], **{"class": "k.0"})
    body = [{"box": {"l": 1, "t": 2, "r": 3, "b": 4}, "k": [1], "score": 0.7}]
    dets = parse_detections(body, mapping, NAMES, 100, 50)
    assert (dets.boxes.tolist(), dets.labels.tolist()) == ([[1, 2, 3, 4]], [1])


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"predictions": [{"x": 1, "y": 1, "width": 1, "height": 1, "class": "cat",
                           "confidence": 1}]}, r"class 'cat' is not in the config's class_names"),
        ({"predictions": [{"x": 1, "y": 1, "width": 1, "height": 1, "class": 7,
                           "confidence": 1}]}, r"class index 7 is outside class_names \(0\.\.2\)"),
        ({"predictions": [{"x": 1, "y": 1, "width": 1, "class": "car", "confidence": 1}]},
         r"predictions\[0\]: no 'height' field"),
        ({"predictions": [{"x": "1", "y": 1, "width": 1, "height": 1, "class": "car",
                           "confidence": 1}]}, r"predictions\[0\]\.x: expected a number"),
        ({"message": "quota exceeded"}, r"no list of detections at 'predictions' \(keys: message"),
    ],
)  # fmt: skip
def test_unusable_responses(body: Any, match: str) -> None:
    with pytest.raises(ModelError, match=match):
        parse_detections(json.dumps(body), ROBOFLOW, NAMES, 100, 50)


def test_a_body_that_is_not_json_is_malformed() -> None:
    with pytest.raises(MalformedResponseError, match=r"not JSON: '<html> <body>502"):
        parse_detections(b"<html>\n<body>502 Bad Gateway</body></html>", ROBOFLOW, NAMES, 9, 9)


def test_centre_boxes_round_trip_float32_exactly() -> None:
    rng = np.random.default_rng(0)
    xyxy = np.sort(rng.uniform(0, 640, (1000, 4)).astype(np.float32).reshape(-1, 2, 2), axis=1)
    for x1, x2 in xyxy.reshape(-1, 2).reshape(-1, 2, 2)[:, 0]:
        cx, w = (float(x1) + float(x2)) / 2, float(x2) - float(x1)
        back = to_xyxy([cx, cx, w, w], "cxcywh")
        assert (np.float32(back[0]), np.float32(back[2])) == (x1, x2)


# --- requests, retries ----------------------------------------------------------------


def test_request_carries_image_params_and_key(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return one_car(request)

    image = np.random.default_rng(1).integers(0, 256, (50, 100, 3), dtype=np.uint8)
    (dets,) = make(tmp_path, handler).predict([image])
    assert dets.boxes.tolist() == [[40, 20, 60, 30]]
    assert dets.labels.tolist() == [1]
    request = seen[0]
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert dict(request.url.params) == {"confidence": "1", "overlap": "50", "api_key": KEY}
    assert np.array_equal(sent_image(request), image)  # PNG: the server sees brittle's exact pixels


def test_multipart_and_header_key(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"dets": [{"b": [1, 2, 3, 4], "c": 0, "s": 0.5}]})

    text = """\
        url: https://infer.example.test/v1/detect
        format: generic
        class_names: [person, car, dog]
        request: {mode: multipart, image_format: jpeg, params: {threshold: 0.01}}
        response: {predictions: dets, box: b, box_format: xyxy, class: c, score: s}
        api_key_env: MY_TOKEN
        api_key_header: Authorization
        api_key_prefix: "Bearer "
    """
    (dets,) = make(tmp_path, handler, text).predict([IMAGE])
    assert dets.boxes.tolist() == [[1, 2, 3, 4]]
    request = seen[0]
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert dict(request.url.params) == {"threshold": "0.01"}
    assert request.headers["content-type"].startswith("multipart/form-data")
    assert b'name="file"; filename="image.jpg"' in request.content


def sequence(*responses: Any) -> tuple[Handler, list[httpx.Request]]:
    """A handler answering with ``responses`` in turn (an exception class is raised)."""
    seen: list[httpx.Request] = []
    lock = threading.Lock()

    def handler(request: httpx.Request) -> httpx.Response:
        with lock:
            seen.append(request)
            r = responses[min(len(seen), len(responses)) - 1]
        if isinstance(r, type) and issubclass(r, httpx.TransportError):
            raise r(f"failed: {request.url}", request=request)
        if callable(r):
            answer: httpx.Response = r(request)
            return answer
        assert isinstance(r, httpx.Response)
        return r

    return handler, seen


def test_retries_every_transient_failure_then_answers(tmp_path: Path) -> None:
    handler, seen = sequence(
        httpx.Response(500),
        httpx.Response(503),
        httpx.ReadTimeout,
        httpx.RemoteProtocolError,  # the server closed the connection without answering
        httpx.Response(200, text="<html>Bad Gateway</html>"),
        one_car,
    )
    sleeps: list[float] = []
    text = ROBOFLOW_CONFIG.replace("retries: 3", "retries: 6\nbackoff: 1\nbackoff_max: 4")
    predictor = make(tmp_path, handler, text, sleeps=sleeps)
    (dets,) = predictor.predict([IMAGE])
    assert dets.labels.tolist() == [1]
    assert len(seen) == 6
    # Full jitter: attempt k waits uniform(0, min(4, 1 * 2**k)).
    assert len(sleeps) == 5
    assert all(0 <= s <= c for s, c in zip(sleeps, [1, 2, 4, 4, 4], strict=True))
    assert predictor.stats["requests"] == 6
    assert predictor.stats["retries"] == 5
    assert predictor.stats["retry: timeout"] == 1
    assert predictor.stats["retry: not JSON"] == 1


def test_retry_after_is_honoured_capped_and_pauses_everyone(tmp_path: Path) -> None:
    handler, _ = sequence(
        httpx.Response(429, headers={"Retry-After": "0.25"}),
        httpx.Response(429, headers={"Retry-After": "3600"}),
        one_car,
    )
    clock = FakeClock()
    text = ROBOFLOW_CONFIG + "retry_after_max: 10\n"
    predictor = HttpPredictor.from_file(
        write(tmp_path, text), environ=ENV, transport=httpx.MockTransport(handler),
        clock=clock, sleep=clock.sleep,
    )  # fmt: skip
    predictor.predict([IMAGE])
    assert clock.slept == [0.25, 10.0]  # as asked, then capped; no backoff on top


def test_a_429_holds_back_every_thread(tmp_path: Path) -> None:
    handler, seen = sequence(httpx.Response(429, headers={"Retry-After": "5"}), one_car)
    sleeps: list[float] = []
    predictor = make(tmp_path, handler, sleeps=sleeps, clock=lambda: 0.0)  # time stands still
    predictor.predict([IMAGE])
    assert len(seen) == 2
    # The pause is the limiter's, which every request of this predictor goes through.
    assert predictor._limiter.reserve() == pytest.approx(5.0)


def test_persistent_failure_raises_and_redacts(tmp_path: Path) -> None:
    handler, seen = sequence(httpx.ConnectError)
    predictor = make(tmp_path, handler)
    with pytest.raises(ModelError) as err:
        predictor.predict([IMAGE])
    message = str(err.value)
    assert len(seen) == 4
    assert "gave up after 4 attempts: ConnectError: failed: https://detect" in message
    assert "api_key=***" in message
    assert KEY not in message
    assert "S3cr3t" not in message
    # brittle's image-by-image retry of a failed call hears the same failure at once...
    with pytest.raises(ModelError, match="gave up after 4 attempts"):
        predictor.predict([IMAGE])
    assert len(seen) == 4
    # ...and only that call: another one tries again.
    with pytest.raises(ModelError, match="gave up after 4 attempts"):
        predictor.predict([IMAGE])
    assert len(seen) == 8


def test_client_errors_are_not_retried_and_a_bad_key_stops_at_once(tmp_path: Path) -> None:
    handler, seen = sequence(httpx.Response(400, text=f"bad image; you sent api_key={KEY}"))
    with pytest.raises(ModelError, match=r"HTTP 400 Bad Request: bad image") as err:
        make(tmp_path, handler).predict([IMAGE])
    assert len(seen) == 1
    assert KEY not in str(err.value)

    handler, seen = sequence(httpx.Response(403, json={"message": "Forbidden"}))
    predictor = make(tmp_path, handler)
    for _ in range(3):
        with pytest.raises(ModelError, match=r"HTTP 403 Forbidden.*check the key in \$ROBOFLOW"):
            predictor.predict([IMAGE])
    assert len(seen) == 1  # the other images are not sent to hear the same answer


def test_a_failed_batch_is_not_paid_twice(tmp_path: Path) -> None:
    images = [np.full((50, 100, 3), i, np.uint8) for i in range(4)]

    def handler(request: httpx.Request) -> httpx.Response:
        if sent_image(request)[0, 0, 0] == 2:
            return httpx.Response(500)
        return one_car(request)

    counting, seen = sequence(handler)
    predictor = make(tmp_path, counting)
    with pytest.raises(ModelError, match=r"1 of 4 images failed; first: .*HTTP 500"):
        predictor.predict(images)
    assert len(seen) == 3 + 4  # three answered, one tried 4 times
    # What brittle does next: image by image. Answers are reused, the failure too.
    for i, image in enumerate(images):
        if i == 2:
            with pytest.raises(ModelError, match=r"gave up after 4 attempts"):
                predictor.predict([image])
        else:
            assert predictor.predict([image])[0].labels.tolist() == [1]
    assert len(seen) == 7
    assert predictor.predict([images[0]])[0].labels.tolist() == [1]
    assert len(seen) == 8  # an ordinary call asks again


def test_concurrent_requests_are_bounded(tmp_path: Path) -> None:
    active, peak = [0], [0]
    lock = threading.Lock()
    gate = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            if active[0] == 2:
                gate.set()
        gate.wait(1.0)
        with lock:
            active[0] -= 1
        return one_car(request)

    text = ROBOFLOW_CONFIG + "concurrency: 2\n"
    images = [np.full((8, 8, 3), i, np.uint8) for i in range(9)]
    out = make(tmp_path, handler, text).predict(images)
    assert len(out) == 9
    assert peak[0] == 2


def test_conf_and_max_det_apply_to_the_answer(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return roboflow_answer(
            (10, 10, 2, 2, "car", 0.3), (20, 20, 2, 2, "dog", 0.9), (30, 30, 2, 2, "car", 0.05),
            (40, 40, 2, 2, "person", 0.6),
        )  # fmt: skip

    (dets,) = make(tmp_path, handler, conf=0.1, max_det=2).predict([IMAGE])
    assert dets.labels.tolist() == [2, 0]  # best two above 0.1, in the server's order
    assert dets.scores.tolist() == pytest.approx([0.9, 0.6])


# --- secrets --------------------------------------------------------------------------


def test_fingerprint_ignores_the_key_and_follows_what_changes_predictions(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, ROBOFLOW_CONFIG)
    a = HttpPredictor.from_file(path, environ={"ROBOFLOW_API_KEY": "one"})
    b = HttpPredictor.from_file(path, environ={"ROBOFLOW_API_KEY": "two"})
    assert a.fingerprint == b.fingerprint
    assert a.fingerprint.startswith("http:")
    assert "one" not in a.fingerprint
    changed = [
        ROBOFLOW_CONFIG.replace("overlap: 50", "overlap: 30"),
        ROBOFLOW_CONFIG.replace("css/3", "css/4"),
        ROBOFLOW_CONFIG.replace("dog]", "cat]"),
        ROBOFLOW_CONFIG.replace("request:\n", "request:\n  image_format: jpeg\n"),
    ]
    prints = {a.fingerprint}
    for text in changed:
        prints.add(HttpPredictor.from_file(write(tmp_path, text), environ=ENV).fingerprint)
    assert len(prints) == 1 + len(changed)
    # How hard we push the server does not change predictions.
    faster = ROBOFLOW_CONFIG + "concurrency: 16\nrate_limit: 5\ntimeout: 3\n"
    assert HttpPredictor.from_file(write(tmp_path, faster), environ=ENV).fingerprint in prints


def test_the_key_is_not_in_repr_pickles_or_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    predictor = make(tmp_path, one_car)
    assert KEY not in repr(predictor)
    assert KEY not in repr(vars(predictor))
    with caplog.at_level(logging.DEBUG):
        predictor.predict([IMAGE])
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "HTTP Request: POST https://detect.example.test/css/3" in logged
    assert KEY not in logged
    assert "S3cr3t" not in logged
    assert "api_key=***" in logged
    blob = pickle.dumps(predictor)
    assert b"S3cr3t" not in blob


def test_redact() -> None:
    assert redact(f"url?api_key={KEY}&x=1") == "url?api_key=***&x=1"
    assert redact("GET /m?token=abc&monkey=banana") == "GET /m?token=***&monkey=banana"
    quoted = "rf_S3cr3t%2Bkey%2F%3D%3D"
    assert redact(f"k {KEY} {quoted} q", [KEY]) == "k *** *** q"


# --- Retry-After, rate limit ----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        (" 0.05 ", 0.05),
        ("-4", 0.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # already past
        ("tomorrow", None),
        ("nan", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert parse_retry_after(value, now=now) == seconds


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_rate_limiter_spaces_requests() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10.0, clock=clock, sleep=clock.sleep)
    starts = []
    for _ in range(5):
        limiter.acquire()
        starts.append(clock.now)
    assert starts == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])


def test_rate_limiter_queues_simultaneous_callers_and_refills() -> None:
    clock = FakeClock()
    limiter = RateLimiter(4.0, burst=2, clock=clock, sleep=clock.sleep)
    # Four threads asking at the same instant: two from the bucket, then 1/4 s apart.
    assert [limiter.reserve() for _ in range(4)] == pytest.approx([0, 0, 0.25, 0.5])
    clock.now = 10.0  # idle: the bucket refills, but never beyond its burst
    assert [limiter.reserve() for _ in range(3)] == pytest.approx([0, 0, 0.25])


def test_rate_limiter_pause_and_no_limit() -> None:
    clock = FakeClock()
    limiter = RateLimiter(None, clock=clock, sleep=clock.sleep)
    assert [limiter.acquire() for _ in range(3)] == [0, 0, 0]
    limiter.pause(2.0)
    assert limiter.acquire() == pytest.approx(2.0)
    assert clock.now == pytest.approx(2.0)
    assert limiter.acquire() == 0
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0)


def test_predictor_requests_follow_the_rate_limit(tmp_path: Path) -> None:
    clock = FakeClock()
    text = ROBOFLOW_CONFIG + "rate_limit: 2\nconcurrency: 1\n"
    predictor = HttpPredictor.from_file(
        write(tmp_path, text), environ=ENV, transport=httpx.MockTransport(one_car),
        clock=clock, sleep=clock.sleep,
    )  # fmt: skip
    predictor.predict([np.full((8, 8, 3), i, np.uint8) for i in range(5)])
    assert sorted(clock.slept) == pytest.approx([0.5, 0.5, 0.5, 0.5])


def test_an_endpoint_that_is_down_stops_the_run_instead_of_failing_every_image(
    tmp_path: Path,
) -> None:
    handler, seen = sequence(httpx.ConnectError)
    text = ROBOFLOW_CONFIG + "stop_after: 3\n"
    predictor = make(tmp_path, handler, text)
    images = [np.full((20, 20, 3), i, np.uint8) for i in range(5)]
    for image in images[:2]:  # a failing image is recorded and the run goes on...
        with pytest.raises(ModelError, match="gave up after 4 attempts") as err:
            predictor.predict([image])
        assert not isinstance(err.value, ModelUnavailableError)
    with pytest.raises(ModelUnavailableError, match=r"looks down: 3 images in a row") as down:
        predictor.predict([images[2]])  # ...until three in a row did
    assert "run the same command again" in str(down.value)
    assert KEY not in str(down.value)
    assert len(seen) == 3 * 4
    with pytest.raises(ModelUnavailableError):  # from now on, at once and without requests
        predictor.predict(images[3:])
    assert len(seen) == 12


def test_one_answer_resets_the_count_and_stop_after_0_never_stops(tmp_path: Path) -> None:
    # Fails 4 attempts (one image), answers once, and so on: never 2 images in a row.
    pattern = [httpx.ConnectError] * 4 + [one_car]
    handler, seen = sequence(*(pattern * 3))
    predictor = make(tmp_path, handler, ROBOFLOW_CONFIG + "stop_after: 2\n")
    for i in range(3):
        with pytest.raises(ModelError) as err:
            predictor.predict([np.full((20, 20, 3), 2 * i, np.uint8)])
        assert not isinstance(err.value, ModelUnavailableError)
        assert len(predictor.predict([np.full((20, 20, 3), 2 * i + 1, np.uint8)])[0]) == 1
    assert len(seen) == 3 * 5
    handler, seen = sequence(httpx.ConnectError)
    predictor = make(tmp_path, handler, ROBOFLOW_CONFIG + "stop_after: 0\n")
    for i in range(8):
        with pytest.raises(ModelError) as err:
            predictor.predict([np.full((20, 20, 3), i, np.uint8)])
        assert not isinstance(err.value, ModelUnavailableError)
    assert len(seen) == 8 * 4


def test_a_refused_key_stops_the_run(tmp_path: Path) -> None:
    handler, seen = sequence(httpx.Response(401, json={"message": "Unauthorized"}))
    predictor = make(tmp_path, handler)
    with pytest.raises(ModelUnavailableError, match="HTTP 401"):
        predictor.predict([IMAGE, IMAGE[:10]])
    assert len(seen) <= 2
