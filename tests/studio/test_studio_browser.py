"""The Studio in a real browser: sign in, apps, API keys with the openai SDK, chat, runs, knowledge, CSRF, layout.

Each test gets its own browser context (own cookies); set-up that is not under test
goes through the admin API to keep the run short.
"""

from __future__ import annotations

import json
import re
import time

import openai
import pytest
from studio_support import DESKTOP, PHONE, new_studio, record
from playwright.sync_api import expect

LONG_MESSAGE = " ".join(f"word{i}" for i in range(120))  # fake/slow-200 echoes it at 5 words a second


def create_app(studio, **body) -> dict:
    with studio.api() as api:
        response = api.post("/v1/apps", json=body)
        assert response.status_code == 201, response.text
        return response.json()


def chatbot(studio, model: str, **config) -> dict:
    return create_app(studio, name=config.pop("name", f"Bot {model}"), kind="chatbot", config={"model": model, **config})


def test_sign_in_create_chatbot_and_api_key_used_by_the_openai_sdk(browser, studio_server, artifacts):
    studio = new_studio(browser, studio_server, artifacts, signed_in=False)
    page = studio.page
    try:
        page.goto(studio.base + "/")
        expect(page).to_have_url(re.compile(r"/studio"))
        expect(page.get_by_role("heading", name="Sign in to the Studio")).to_be_visible()
        studio.shot("sign-in")
        page.get_by_label("Password").fill("wrong")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text("wrong user name or password")
        page.get_by_label("Password").fill(studio_server.admin_password)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Apps", exact=True)).to_be_visible()

        # A chatbot from the form: model from the providers' models, system prompt.
        page.get_by_role("link", name="New chatbot").click()
        page.get_by_label("Name", exact=True).fill("Support bot")
        page.get_by_label("Model", exact=True).select_option("fake/echo")
        page.get_by_label("System prompt").fill("You answer support questions.")
        studio.shot("chatbot-form")
        page.get_by_role("button", name="Create chatbot").click()
        expect(page.get_by_role("heading", name="Support bot")).to_be_visible()
        expect(page.get_by_role("heading", name="Versions")).to_be_visible()
        expect(page.locator(".versions tbody tr")).to_have_count(1)
        app_id = page.url.rsplit("/", 1)[-1]
        slug = page.evaluate(f"fetch('/v1/apps/{app_id}').then(r => r.json()).then(a => a.slug)")
        page.get_by_role("link", name="Apps", exact=True).click()
        expect(page.locator(f'.app-card[data-app-id="{app_id}"]')).to_be_visible()
        studio.shot("apps")

        # API Keys: the button opens the list; New API Key shows the full key once, with copy and warning.
        page.get_by_role("button", name="API Keys", exact=True).click()
        keys_dialog = page.get_by_role("dialog", name="API Keys")
        expect(keys_dialog).to_be_visible()
        keys_dialog.get_by_role("button", name="New API Key").click()
        create_dialog = page.get_by_role("dialog", name="Create API Key")
        create_dialog.get_by_label("Name").fill("sdk key")
        create_dialog.get_by_role("button", name="Create API Key").click()
        expect(create_dialog.get_by_role("alert")).to_contain_text("won't be shown again")
        expect(create_dialog.get_by_role("button", name="Copy")).to_be_visible()
        key = create_dialog.get_by_label("Your new API key").input_value()
        assert key.startswith("hw_") and len(key) > 40
        studio.shot("api-key-created")
        create_dialog.get_by_role("button", name="Done").click()
        row = keys_dialog.locator("tr", has_text="sdk key")
        expect(row).to_be_visible()
        expect(row.locator(".masked-key")).to_have_text(re.compile(r"^hw_\S{7}•+$"))
        assert key not in page.content()  # listed masked: the full key is gone from the page
        studio.shot("api-keys")

        # The key works from the official openai SDK...
        client = openai.OpenAI(base_url=f"{studio.base}/v1", api_key=key, max_retries=0, timeout=20)
        reply = client.chat.completions.create(model=slug, messages=[{"role": "user", "content": "hello from the SDK"}])
        assert reply.choices[0].message.content == "hello from the SDK"

        # ...until it is deleted in the dialog (trash icon, confirmation): then 401 at once.
        row.get_by_role("button", name="Delete API key sdk key").click()
        confirm = page.get_by_role("dialog", name="Delete API key?")
        expect(confirm).to_contain_text("loses access at once")
        confirm.get_by_role("button", name="Delete key").click()
        expect(keys_dialog.locator("tr", has_text="sdk key")).to_have_count(0)
        with pytest.raises(openai.AuthenticationError) as refused:
            client.chat.completions.create(model=slug, messages=[{"role": "user", "content": "again"}])
        assert refused.value.status_code == 401

        # Sign out ends the session.
        page.keyboard.press("Escape")
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("heading", name="Sign in to the Studio")).to_be_visible()
        assert page.evaluate("fetch('/v1/apps').then(r => r.status)") == 401
        assert studio.errors == []
    finally:
        page.context.close()


def test_api_keys_menu_and_dialog_keyboard(studio):
    page = studio.page
    studio.open("apps")
    # The seed's way: the API Keys control's dropdown has "New API Key".
    page.get_by_role("button", name="API key actions").click()
    page.get_by_role("menuitem", name="New API Key").click()
    expect(page.get_by_role("dialog", name="Create API Key")).to_be_visible()
    expect(page.get_by_role("dialog", name="Create API Key").get_by_label("Name")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)
    # Keyboard only: open, Tab stays inside the dialog, Escape closes and focus goes back to the button.
    keys_button = page.get_by_role("button", name="API Keys", exact=True)
    keys_button.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="API Keys")
    expect(dialog).to_be_visible()
    expect(dialog.locator("tbody tr").first).to_be_visible()
    for _ in range(12):
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.closest('[role=dialog]') !== null")
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(keys_button).to_be_focused()


def test_chat_streams_and_stop_cancels_then_the_run_shows_its_timeline(studio):
    page = studio.page
    app = chatbot(studio, "fake/slow-200", name="Slow bot")
    studio.open(f"chat/{app['id']}", ready=".composer")
    page.get_by_label("Message").fill(LONG_MESSAGE)
    page.get_by_role("button", name="Send").click()
    answer = page.locator(".msg-assistant").last
    expect(answer.locator(".msg-text")).to_contain_text("word3")  # tokens arrive one by one
    studio.shot("chat-streaming")
    with page.expect_request(lambda r: r.method == "DELETE" and "/v1/runs/" in r.url) as stop_request:
        page.get_by_role("button", name="Stop").click()
    assert stop_request.value.headers.get("x-csrf-token")
    expect(answer.locator(".badge")).to_have_text("cancelled", timeout=5000)
    partial = answer.locator(".msg-text").inner_text()
    assert 0 < len(partial) < len(LONG_MESSAGE)
    expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    studio.shot("chat")

    answer.get_by_role("link", name="View run ›").click()
    expect(page.get_by_role("heading", name="Run", exact=True)).to_be_visible()
    expect(page.locator(".run-status .badge")).to_have_text("cancelled")
    expect(page.locator('.timeline .tl-item[data-node-id="llm"]')).to_be_visible()
    expect(page.locator(".live-note")).to_have_text("Run finished")
    studio.shot("run")


def test_run_page_follows_a_live_run(studio):
    page = studio.page
    app = chatbot(studio, "fake/slow-100", name="Live bot")
    with studio.api() as api:
        started = api.post("/v1/runs", json={"app_id": app["id"], "inputs": {"message": " ".join(["tick"] * 80)},
                                             "background": True})
        assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    studio.open(f"runs/{run_id}", ready=".timeline", idle=False)
    expect(page.locator(".live-note")).to_contain_text("Live")
    node = page.locator('.timeline .tl-item[data-node-id="llm"]')
    expect(node.locator(".badge")).to_have_text("running")
    studio.shot("run-live")
    # No reload: the stream brings the end of the run.
    expect(node.locator(".badge")).to_have_text("succeeded", timeout=30_000)
    expect(page.locator(".run-status .badge")).to_have_text("succeeded")
    expect(page.locator(".live-note")).to_have_text("Run finished")

    studio.open(f"runs?app={app['id']}", ready=".runs-table")
    expect(page.locator(f'tr[data-run-id="{run_id}"]')).to_be_visible()
    page.get_by_label("Status").select_option("failed")
    expect(page.locator(f'tr[data-run-id="{run_id}"]')).to_have_count(0)
    page.get_by_label("Status").select_option("succeeded")
    expect(page.locator(f'tr[data-run-id="{run_id}"]')).to_be_visible()
    studio.shot("runs")


def test_chat_answers_a_human_input_prompt_in_place(studio):
    page = studio.page
    app = create_app(studio, name="Sizes", kind="chatflow", graph={
        "nodes": [
            {"id": "start", "type": "start", "inputs": [{"name": "query", "type": "string", "required": True}]},
            {"id": "ask", "type": "human_input", "prompt": "Which size for {{ start.query }}?"},
            {"id": "out", "type": "answer", "text": "You chose {{ ask.text }}"},
        ],
        "edges": [{"source": "start", "target": "ask"}, {"source": "ask", "target": "out"}],
    })
    studio.open(f"chat/{app['id']}", ready=".composer")
    page.get_by_label("Message").fill("shirt")
    page.keyboard.press("Enter")
    prompt = page.get_by_label("Which size for shirt?")
    expect(prompt).to_be_visible()
    studio.shot("chat-human-input")
    prompt.fill("large")
    page.get_by_role("button", name="Answer").click()
    expect(page.locator(".msg-assistant").last.locator(".msg-text")).to_have_text("You chose large")
    expect(page.locator(".msg-assistant").last.locator(".run-link")).to_be_visible()


def test_chat_attachments_reach_the_model(studio):
    page = studio.page
    app = chatbot(studio, "fake/context", name="Context bot")
    studio.open(f"chat/{app['id']}", ready=".composer")
    page.locator('input[type="file"]').set_input_files([
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"The secret word is pineapple."},
        {"name": "dot.png", "mimeType": "image/png", "buffer": _tiny_png()},
    ])
    expect(page.locator(".chip")).to_have_count(2)
    page.get_by_label("Message").fill("What is the secret word?")
    page.get_by_role("button", name="Send").click()
    text = page.locator(".msg-assistant").last.locator(".msg-text")
    expect(text).to_contain_text("pineapple")
    expect(text).to_contain_text("[1 image]")


def test_knowledge_upload_becomes_ready_query_and_cited_in_chat(studio):
    page = studio.page
    studio.open("knowledge")
    page.get_by_label("Name").fill("Handbook")
    page.get_by_role("button", name="Create knowledge base").click()
    expect(page.get_by_role("heading", name="Handbook")).to_be_visible()
    page.get_by_label("Files to upload").set_input_files([{
        "name": "refunds.md", "mimeType": "text/markdown",
        "buffer": b"# Refunds\n\nCustomers get a full refund within 30 days of purchase.\n\n"
                  b"# Shipping\n\nParcels ship from Oslo every weekday.\n",
    }])
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.get_by_role("status").filter(has_text="Uploaded 1 document")).to_be_visible()
    assert page.locator("progress").evaluate("p => p.value") == 100
    row = page.locator("tr", has_text="refunds.md")
    expect(row).to_have_attribute("data-status", "ready", timeout=20_000)
    expect(row.locator(".badge")).to_have_text("ready")
    page.get_by_role("searchbox", name="Query").fill("refund within days")
    page.get_by_role("button", name="Search").click()
    first = page.locator(".chunk").first
    expect(first).to_contain_text("full refund within 30 days")
    expect(first.locator(".score")).to_have_text(re.compile(r"score (\d+\.\d{4}|\d\.\d{2}e[-+]\d+)$"))
    studio.shot("knowledge")

    kb_id = page.url.rsplit("/", 1)[-1]
    app = chatbot(studio, "fake/echo", name="Cited bot", knowledge_bases=[kb_id])
    studio.open(f"chat/{app['id']}", ready=".composer")
    page.get_by_label("Message").fill("refund within 30 days")
    page.get_by_role("button", name="Send").click()
    sources = page.locator(".msg-assistant .citations")
    expect(sources).to_be_visible()
    sources.locator("summary").click()
    expect(sources).to_contain_text("full refund")
    studio.shot("chat-citations")

    studio.open(f"knowledge/{kb_id}", ready="tr[data-status]")
    page.locator("tr", has_text="refunds.md").get_by_role("button", name=re.compile("^Delete document")).click()
    page.get_by_role("dialog", name="Delete document?").get_by_role("button", name="Delete document").click()
    expect(page.locator("tr", has_text="refunds.md")).to_have_count(0)


def test_graph_editor_shows_problems_next_to_nodes_and_drawing_follows(studio):
    page = studio.page
    studio.open("apps/new/chatflow", ready="svg.graph")
    editor = page.get_by_role("textbox", name="Definition")
    expect(page.locator("svg.graph .node")).to_have_count(3)
    document = json.loads(editor.input_value())
    document["name"] = "Drawn flow"
    document["graph"]["nodes"][1]["model"] = "fake/echo"
    document["graph"]["nodes"].append({"id": "extra", "type": "sparkle"})
    document["graph"]["edges"].append({"source": "reply", "target": "extra"})
    editor.fill(json.dumps(document, indent=2))
    expect(page.locator("svg.graph .node")).to_have_count(4)
    bad = page.locator('svg.graph .node.has-problem[data-node-id="extra"]')
    expect(bad).to_be_visible()
    expect(bad.locator(".problem-text")).to_contain_text("unknown node type")
    expect(page.locator('.problem[data-node-id="extra"]')).to_contain_text("unknown node type 'sparkle'")
    studio.shot("editor-problem")
    page.get_by_role("button", name="Create chatflow").click()
    expect(page.get_by_role("alert")).to_contain_text("Fix the problems")

    document["graph"]["nodes"][-1] = {"id": "extra", "type": "template", "text": "{{ reply.text }}!"}
    editor.fill(json.dumps(document, indent=2))
    expect(page.locator("svg.graph .node.has-problem")).to_have_count(0)
    expect(page.locator(".problems .ok")).to_be_visible()
    page.get_by_label("Format").select_option("yaml")
    expect(editor).to_have_value(re.compile(r"^headwater_app: 1\n", re.MULTILINE))
    page.get_by_role("button", name="Create chatflow").click()
    expect(page.get_by_role("heading", name="Drawn flow")).to_be_visible()
    expect(page.locator(".versions tbody tr")).to_have_count(1)
    studio.shot("editor")

    # Export, then import the same document as a new app (another slug): both through the page.
    with page.expect_download() as download:
        page.get_by_role("button", name="Export YAML").click()
    exported = open(download.value.path(), encoding="utf-8").read()
    assert "kind: chatflow" in exported and "name: Drawn flow" in exported
    studio.open("apps")
    page.get_by_role("button", name="Import…").click()
    dialog = page.get_by_role("dialog", name="Import an app")
    dialog.get_by_label("Document text").fill(exported.replace("slug: drawn-flow", "slug: drawn-flow-copy"))
    dialog.get_by_role("button", name="Import").click()
    expect(page.get_by_role("heading", name="Drawn flow")).to_be_visible()
    assert page.evaluate("location.hash") != ""
    with studio.api() as api:
        slugs = {app["slug"] for app in api.get("/v1/apps").json()}
    assert {"drawn-flow", "drawn-flow-copy"} <= slugs


def test_providers_add_with_write_only_secret_and_list_models(studio):
    page = studio.page
    studio.open("providers", ready=".cards")
    page.get_by_label("Name", exact=True).fill("myllm")
    page.get_by_label("Base URL").fill("http://127.0.0.1:9/v1")
    page.get_by_label("API key", exact=True).fill("sk-very-secret-value")
    page.get_by_label("Models").fill("m1, m2")
    page.get_by_role("button", name="Add provider").click()
    card = page.locator('.card[data-provider="myllm"]')
    expect(card).to_contain_text("set (hidden)")
    expect(page.get_by_label("API key", exact=True)).to_have_value("")
    card.get_by_role("button", name="Show models").click()
    expect(card.locator(".model-list")).to_contain_text("myllm/m2")
    assert "sk-very-secret-value" not in page.content()
    studio.shot("providers")
    studio.open("apps/new/chatbot", ready="form.chatbot-form")
    assert "myllm/m1" in page.get_by_label("Model", exact=True).locator("option").all_inner_texts()


def test_state_changing_request_with_cookie_but_without_csrf_token_is_refused(studio):
    page = studio.page
    studio.open("apps")
    status, body = page.evaluate("""async () => {
        const r = await fetch('/v1/api-keys', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                              body: JSON.stringify({name: 'forged'})});
        return [r.status, await r.json()];
    }""")
    assert status == 403 and "CSRF" in body["detail"]
    status = page.evaluate("""async () => {
        const session = await (await fetch('/studio/api/session')).json();
        const r = await fetch('/v1/api-keys', {method: 'POST', body: JSON.stringify({name: 'with token'}),
            headers: {'Content-Type': 'application/json', 'X-CSRF-Token': session.csrf_token}});
        return r.status;
    }""")
    assert status == 201
    assert page.context.request.delete("/v1/apps/whatever").status == 403


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["390x844", "1440x900"])
def test_pages_have_no_horizontal_scroll(browser, studio_server, artifacts, viewport):
    studio = new_studio(browser, studio_server, artifacts, viewport=viewport)
    page = studio.page
    name = "phone" if viewport is PHONE else "desktop"
    bot = chatbot(studio, "fake/echo", name="Layout bot with a rather long name to wrap")
    flow = create_app(studio, name="Layout flow", kind="workflow", graph={
        "nodes": [
            {"id": "start", "type": "start", "inputs": [{"name": "topic", "type": "string", "required": True}]},
            {"id": "check", "type": "condition", "cases": [{"id": "long", "when": "{{ start.topic | length > 20 }}"}]},
            {"id": "short_reply", "type": "llm", "model": "fake/slow-30", "prompt": "{{ start.topic }}"},
            {"id": "long_reply", "type": "llm", "model": "fake/slow-30", "prompt": "Long: {{ start.topic }}"},
            {"id": "end", "type": "end", "outputs": {"short": "{{ short_reply.text }}", "long": "{{ long_reply.text }}"}},
        ],
        "edges": [{"source": "start", "target": "check"},
                  {"source": "check", "target": "long_reply", "branch": "long"},
                  {"source": "check", "target": "short_reply", "branch": "default"},
                  {"source": "short_reply", "target": "end"}, {"source": "long_reply", "target": "end"}],
    })
    with studio.api() as api:
        run = api.post("/v1/runs", json={"app_id": flow["id"], "inputs": {"topic": "a fairly long topic to branch"}})
        assert run.status_code == 200, run.text
        kb = api.post("/v1/knowledge-bases", json={"name": f"Layout KB {name}"}).json()
        api.post(f"/v1/knowledge-bases/{kb['id']}/documents", json={"text": "Layout text " * 50, "title": "layout.txt"})
    pages = {
        "apps": ("apps", ".cards"),
        "chatbot": (f"apps/{bot['id']}", ".versions tbody tr"),
        "workflow-editor": (f"apps/{flow['id']}", "svg.graph .node"),
        "chat": (f"chat/{bot['id']}", ".composer"),
        "runs": ("runs", ".runs-table"),
        "run": (f"runs/{run.json()['id']}", ".tl-item"),
        "knowledge": ("knowledge", ".cards"),
        "knowledge-base": (f"knowledge/{kb['id']}", "tr[data-status]"),
        "providers": ("providers", ".cards"),
    }
    try:
        overflow = {}
        for label, (path, ready) in pages.items():
            studio.open(path, ready=ready)
            overflow[label] = studio.horizontal_overflow()
            studio.shot(f"{name}-{label}")
        studio.open("apps")
        page.get_by_role("button", name="API Keys", exact=True).click()
        expect(page.get_by_role("dialog", name="API Keys").locator("tbody tr").first).to_be_visible()
        overflow["api-keys"] = studio.horizontal_overflow()
        studio.shot(f"{name}-api-keys", full_page=False)
        assert {label: px for label, px in overflow.items() if px > 0} == {}
        assert studio.errors == []
    finally:
        page.context.close()


def test_first_paint_and_download_size(browser, studio_server, artifacts):
    """Measured, not asserted tightly (two shared cores): written to metrics.json and printed."""
    results = {}
    for label, signed_in, ready in (("sign-in page", False, "form.sign-in"), ("apps page", True, ".page-head")):
        studio = new_studio(browser, studio_server, artifacts, signed_in=signed_in)
        page = studio.page
        try:
            cdp = page.context.new_cdp_session(page)
            cdp.send("Network.enable")
            cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
            received = {}
            cdp.on("Network.loadingFinished", lambda e: received.__setitem__(e["requestId"], e["encodedDataLength"]))
            started = time.monotonic()
            page.goto(f"{studio.base}/studio")
            page.wait_for_selector(ready)
            page.wait_for_load_state("networkidle")
            ready_ms = (time.monotonic() - started) * 1000
            paint = page.evaluate(
                "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null")
            decoded = page.evaluate("""() => performance.getEntriesByType('resource')
                .concat(performance.getEntriesByType('navigation'))
                .reduce((sum, e) => sum + (e.decodedBodySize || 0), 0)""")
            results[label] = {
                "first_contentful_paint_ms": round(paint, 1) if paint is not None else None,
                "ready_ms": round(ready_ms, 1),
                "requests": len(received),
                "bytes_transferred": int(sum(received.values())),
                "bytes_decoded": int(decoded),
            }
        finally:
            page.context.close()
    path = artifacts / "metrics.json"
    path.write_text(json.dumps(results, indent=2))
    record(path)
    print("\nStudio load:", json.dumps(results, indent=2))
    for measured in results.values():
        assert measured["first_contentful_paint_ms"] is not None
        assert measured["bytes_transferred"] < 300_000


def _tiny_png() -> bytes:
    import base64

    return base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    )
