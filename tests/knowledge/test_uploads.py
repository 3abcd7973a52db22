"""Files, images and audio sent with a chat message (Waterflai/OpenAI route and Tailwinds prediction route)."""

from __future__ import annotations

import base64
import shutil
import subprocess

import httpx
import pytest
from knowledge.documents import make_docx, make_pdf
from openai import OpenAI
from support.embedding_mock import TRANSCRIPT, serve_embeddings
from support.server import ServerProcess

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
SPOKEN = "please tell me about the price of coffee"


def data_uri(mime: str, data: bytes, filename: str | None = None) -> str:
    name = f";filename={filename}" if filename else ""
    return f"data:{mime}{name};base64,{base64.b64encode(data).decode()}"


def chat(workspace, bot: dict, content) -> httpx.Response:
    with workspace.client() as client:
        return client.post("/v1/chat/completions", json={
            "model": bot["slug"], "messages": [{"role": "user", "content": content}]})


def test_files_in_openai_content_parts_become_context(workspace):
    bot = workspace.create_chatbot(model="fake/context", system_prompt="Be brief.")
    pdf = make_pdf([["Cover page."], ["The invoice total is 4,210 euros, due on the first of June."]])
    docx = make_docx([("Terms", ["Payment is accepted by bank transfer only."])])
    client = OpenAI(base_url=f"{workspace.server.base_url}/v1", api_key=workspace.create_key())
    reply = client.chat.completions.create(model=bot["slug"], messages=[{"role": "user", "content": [
        {"type": "text", "text": "Summarise these."},
        {"type": "image_url", "image_url": {"url": data_uri("application/pdf", pdf, "invoice.pdf")}},
        {"type": "file", "file": {"file_data": data_uri("application/octet-stream", docx), "filename": "terms.docx"}},
    ]}])
    answer = reply.choices[0].message.content
    assert answer.startswith("system: Be brief.")
    assert '<file name="invoice.pdf">' in answer and "The invoice total is 4,210 euros" in answer
    assert '<file name="terms.docx">' in answer and "bank transfer only" in answer
    assert answer.endswith("user: Summarise these.")


@pytest.mark.parametrize(("url", "expected"), [
    ("data:application/pdf;filename=a.pdf;base64,@@@not-base64@@@", "base64"),
    ("data:application/pdf;filename=a.pdf,JVBERi0=", "base64"),           # no ;base64 marker
    ("data:not a mime;base64,AAAA", "MIME"),
    ("data:text/plain;bad param;base64,aGVsbG8=", "parameter"),
    ("data:text/plain;base64,", "no data"),
])
def test_malformed_data_uris_are_422(workspace, url, expected):
    bot = workspace.create_chatbot(model="fake/echo")
    response = chat(workspace, bot, [{"type": "text", "text": "read"}, {"type": "image_url", "image_url": {"url": url}}])
    assert response.status_code == 422, response.text
    assert expected in response.json()["detail"]


def test_a_file_of_another_type_than_it_claims_is_refused(workspace):
    bot = workspace.create_chatbot(model="fake/echo")
    response = chat(workspace, bot, [{"type": "text", "text": "read"}, {"type": "image_url", "image_url": {
        "url": data_uri("application/pdf", b"plain words, not a PDF", "fake.pdf")}}])
    assert response.status_code == 415


def test_images_reach_vision_models_and_are_refused_for_text_only_ones(workspace):
    image = {"type": "image_url", "image_url": {"url": data_uri("image/png", PNG)}}
    vision = workspace.create_chatbot(model="fake/echo")
    response = chat(workspace, vision, [{"type": "text", "text": "what is it?"}, image])
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "what is it? [1 image]"
    text_only = workspace.create_chatbot(model="local/gemma-3-270m", name="Text only")
    response = chat(workspace, text_only, [{"type": "text", "text": "what is it?"}, image])
    assert response.status_code == 422
    assert "does not accept images" in response.json()["detail"]


def test_image_urls_are_fetched_through_the_egress_guard(workspace):
    bot = workspace.create_chatbot(model="fake/echo")
    response = chat(workspace, bot, [{"type": "text", "text": "look"},
                                     {"type": "image_url", "image_url": {"url": "https://127.0.0.1/cat.png"}}])
    assert response.status_code == 422, response.text


@pytest.fixture(scope="session")
def spoken_wav(tmp_path_factory) -> bytes:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (scripts/install_system_packages.sh installs it)")
    path = tmp_path_factory.mktemp("audio") / "question.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "140", "-w", str(path), SPOKEN], check=True)
    return path.read_bytes()


def test_spoken_questions_are_transcribed_offline_through_the_prediction_route(workspace, spoken_wav):
    bot = workspace.create_chatbot(model="fake/echo")
    with workspace.client(workspace.create_key()) as client:
        response = client.post(f"/api/v1/prediction/{bot['id']}", json={
            "question": "", "uploads": [
                {"data": data_uri("audio/wav", spoken_wav), "type": "audio", "name": "audio.wav", "mime": "audio/wav"}]})
    assert response.status_code == 200, response.text
    body = response.json()
    transcript = body["question"]
    assert "price" in transcript.split()  # pocketsphinx on synthetic speech: the key word survives
    assert body["text"] == transcript     # fake/echo answers with exactly what reached the model


def test_spoken_questions_through_the_openai_route(workspace, spoken_wav):
    bot = workspace.create_chatbot(model="fake/echo")
    response = chat(workspace, bot, [{"type": "input_audio", "input_audio": {
        "data": base64.b64encode(spoken_wav).decode(), "format": "wav"}}])
    assert response.status_code == 200, response.text
    assert "price" in response.json()["choices"][0]["message"]["content"].split()


def test_files_uploaded_to_the_prediction_route_become_context(workspace):
    bot = workspace.create_chatbot(model="fake/context")
    pdf = make_pdf([["The warranty on the Model X kettle lasts three years."]])
    with workspace.client(workspace.create_key()) as client:
        response = client.post(f"/api/v1/prediction/{bot['id']}", json={
            "question": "How long is the warranty?",
            "uploads": [{"data": data_uri("application/pdf", pdf), "type": "file", "name": "kettle.pdf",
                         "mime": "application/pdf"}]})
    assert response.status_code == 200, response.text
    assert "The warranty on the Model X kettle lasts three years." in response.json()["text"]


def test_audio_in_formats_offline_decoding_cannot_read_is_422(workspace):
    bot = workspace.create_chatbot(model="fake/echo")
    with workspace.client(workspace.create_key()) as client:
        response = client.post(f"/api/v1/prediction/{bot['id']}", json={"uploads": [
            {"data": "data:audio/webm;codecs=opus;base64,GkXf", "type": "audio", "name": "a.webm", "mime": "audio/webm"}]})
    assert response.status_code == 422
    assert "speech-to-text" in response.json()["detail"]


@pytest.fixture(scope="module")
def transcribing_server(tmp_path_factory):
    mock = serve_embeddings()
    server = ServerProcess(data_dir=tmp_path_factory.mktemp("stt"),
                           extra_env={"HEADWATER_TRANSCRIPTION_MODEL": "stt/whisper-1"})
    server.start()
    yield server, mock
    server.stop()
    mock.stop()


def test_a_configured_transcription_provider_is_used(transcribing_server):
    server, mock = transcribing_server
    workspace = server.new_workspace()
    with workspace.client() as client:
        assert client.post("/v1/providers", json={"name": "stt", "type": "openai",
                                                  "base_url": f"{mock.base_url}/v1"}).status_code == 201
    bot = workspace.create_chatbot(model="fake/echo")
    with workspace.client(workspace.create_key()) as client:
        response = client.post(f"/api/v1/prediction/{bot['id']}", json={"uploads": [
            {"data": "data:audio/webm;codecs=opus;base64,GkXfo59ChoEB", "type": "audio", "name": "a.webm",
             "mime": "audio/webm"}]})
    assert response.status_code == 200, response.text
    assert response.json()["text"] == TRANSCRIPT
    assert {"transcription": "whisper-1", "file": "a.webm"} in mock.state.requests
