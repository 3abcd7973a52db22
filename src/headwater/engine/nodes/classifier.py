"""`classifier`: a model picks one of the labelled classes for a text; the class id is the branch.

`{"model": ..., "input": "{{ sys.query }}", "classes": [{"id": "billing", "label": "Billing question"}]}`.
The model is shown the labels and answers with one; the earliest class id or
label found in its answer wins, and none found takes the `default` branch.
Outputs `class`, `label` and the model's raw `text`.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from headwater.engine.context import NodeContext
from headwater.engine.nodes.base import ModelName, Node, NodeConfig, NodeResult, node_type
from headwater.engine.nodes.llm import stream_completion
from headwater.providers.base import ChatMessage, GenerationParams


class ClassSpec(NodeConfig):
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    label: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)


class ClassifierConfig(NodeConfig):
    model: ModelName
    input: str = Field(default="{{ sys.query }}", max_length=50_000)
    classes: list[ClassSpec] = Field(min_length=1, max_length=50)
    instructions: str = Field(default="", max_length=10_000)

    @field_validator("classes")
    @classmethod
    def _unique(cls, classes: list[ClassSpec]) -> list[ClassSpec]:
        ids = [c.id for c in classes]
        if len(ids) != len(set(ids)) or "default" in ids:
            raise ValueError("class ids must be unique and not 'default'")
        return classes


def pick_class(reply: str, classes: list[ClassSpec]) -> ClassSpec | None:
    lowered = reply.lower()
    best: tuple[int, ClassSpec] | None = None
    for spec in classes:
        for name in (spec.id, spec.label):
            at = lowered.find(name.lower())
            if at != -1 and (best is None or at < best[0]):
                best = (at, spec)
    return best[1] if best else None


@node_type("classifier")
class ClassifierNode(Node):
    Config = ClassifierConfig
    outputs = ("class", "label", "text")
    effectful = True

    def templates(self):
        return [self.config.input, self.config.instructions]

    def branches(self) -> set[str]:
        return {spec.id for spec in self.config.classes}

    async def run(self, ctx: NodeContext) -> NodeResult:
        config: ClassifierConfig = self.config
        text = ctx.render(config.input)
        labels = "\n".join(
            f"- {spec.label}" + (f": {spec.description}" if spec.description else "") for spec in config.classes
        )
        system = (
            "Classify the user's message into exactly one of these categories and answer with the "
            f"category name only.\n{labels}"
        )
        if config.instructions:
            system += "\n" + ctx.render(config.instructions)
        ctx.record_inputs(model=config.model, input=text)
        messages = [ChatMessage(role="system", content=system), ChatMessage(role="user", content=text)]
        reply, usage, _ = await stream_completion(
            ctx, config.model, messages, GenerationParams(temperature=0, max_tokens=20), stream_tokens=False
        )
        chosen = pick_class(reply, config.classes)
        branch = chosen.id if chosen else "default"
        return NodeResult(
            outputs={"class": branch, "label": chosen.label if chosen else "", "text": reply},
            branch=branch, usage=usage,
        )
