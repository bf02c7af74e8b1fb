"""The configs a search tries, and a model's config.pbtxt rewritten to each,
through Triton's own schema (tritonclient's model_config_pb2): only
dynamic_batching and the instance count change; everything else the author
wrote stays as written (a GPU instance group stays on the GPU in the
revision made from it; the local target's staging runs it on the CPU)."""

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from deployments.errors import DomainError

MAX_CONFIGS = 12
MAX_INSTANCES = 8
MAX_QUEUE_DELAY_US = 100_000


def default_grid(max_batch_size: int) -> list[dict]:
    """Small on purpose: each config is a Triton start and a sweep. Dynamic
    batching off and on (without and with a short queue delay) at one and
    two instances; a model that cannot batch only tries instance counts."""
    if max_batch_size <= 0:
        return [{"dynamic_batching": False, "max_queue_delay_us": 0, "instances": n} for n in (1, 2)]
    return [
        {"dynamic_batching": False, "max_queue_delay_us": 0, "instances": 1},
        {"dynamic_batching": False, "max_queue_delay_us": 0, "instances": 2},
        {"dynamic_batching": True, "max_queue_delay_us": 0, "instances": 1},
        {"dynamic_batching": True, "max_queue_delay_us": 0, "instances": 2},
        {"dynamic_batching": True, "max_queue_delay_us": 2000, "instances": 1},
    ]


def clean_grid(grid, max_batch_size: int) -> list[dict]:
    if grid in (None, []):
        return default_grid(max_batch_size)
    if not isinstance(grid, list) or len(grid) > MAX_CONFIGS:
        raise DomainError(f"grid is a list of at most {MAX_CONFIGS} configs.", path="grid")
    clean = []
    for index, item in enumerate(grid):
        where = f"grid[{index}]"
        if not isinstance(item, dict) or set(item) - {"dynamic_batching", "max_queue_delay_us", "instances"}:
            raise DomainError(f"{where} is {{dynamic_batching, max_queue_delay_us, instances}}.", path=where)
        batching = item.get("dynamic_batching", False)
        delay = item.get("max_queue_delay_us", 0)
        instances = item.get("instances", 1)
        if not isinstance(batching, bool):
            raise DomainError(f"{where}.dynamic_batching is true or false.", path=f"{where}.dynamic_batching")
        if batching and max_batch_size <= 0:
            raise DomainError(
                f"{where}: dynamic batching needs max_batch_size above 0; this model's is {max_batch_size}.",
                path=f"{where}.dynamic_batching",
            )
        if isinstance(delay, bool) or not isinstance(delay, int) or not 0 <= delay <= MAX_QUEUE_DELAY_US:
            raise DomainError(
                f"{where}.max_queue_delay_us is from 0 to {MAX_QUEUE_DELAY_US}.", path=f"{where}.max_queue_delay_us"
            )
        if isinstance(instances, bool) or not isinstance(instances, int) or not 1 <= instances <= MAX_INSTANCES:
            raise DomainError(f"{where}.instances is from 1 to {MAX_INSTANCES}.", path=f"{where}.instances")
        config = {"dynamic_batching": batching, "max_queue_delay_us": delay if batching else 0, "instances": instances}
        if config in clean:
            raise DomainError(f"{where} repeats an earlier config.", path=where)
        clean.append(config)
    return clean


def describe(config: dict) -> str:
    instances = f"{config['instances']} instance{'s' if config['instances'] != 1 else ''}"
    if not config["dynamic_batching"]:
        return f"no dynamic batching, {instances}"
    delay = config["max_queue_delay_us"]
    return f"dynamic batching (queue delay {delay} µs), {instances}"


def _wanted(config_text: str, config: dict) -> mc.ModelConfig:
    message = mc.ModelConfig()
    try:
        text_format.Parse(config_text or "", message)
    except text_format.ParseError as exc:
        raise DomainError(f"The model's config.pbtxt cannot be read: {exc}", path="model") from None
    if not config["dynamic_batching"]:
        message.ClearField("dynamic_batching")
    else:
        # What the author set there (preferred sizes, priorities) stays.
        message.dynamic_batching.SetInParent()
        message.dynamic_batching.max_queue_delay_microseconds = config["max_queue_delay_us"]
    if message.instance_group:
        for group in message.instance_group:
            group.count = config["instances"]
    else:
        message.instance_group.add(count=config["instances"])
    return message


def rewrite(config_text: str, config: dict) -> str:
    """config.pbtxt with the config's batching and instance count. The
    author's text stays as written (comments, layout, order) but for the
    two fields, which are taken out and written again at the end, so a
    revision's diff shows just what the search changed. Whatever the text,
    the result must parse to exactly the intended config; if the in-place
    edit ever did not, the whole config is written out by protobuf instead."""
    wanted = _wanted(config_text, config)
    edited = _without_fields(config_text or "", {"dynamic_batching", "instance_group"})
    if edited is not None:
        tail = ["instance_group [ " + ", ".join(_one_line(g) for g in wanted.instance_group) + " ]"]
        if wanted.HasField("dynamic_batching"):
            tail.append("dynamic_batching " + _one_line(wanted.dynamic_batching))
        text = edited.rstrip() + "\n" + "\n".join(tail) + "\n"
        check = mc.ModelConfig()
        try:
            text_format.Parse(text, check)
        except text_format.ParseError:
            check = None
        if check == wanted:
            return text
    return text_format.MessageToString(wanted)


def _one_line(message) -> str:
    return "{ " + text_format.MessageToString(message, as_one_line=True) + " }"


def _without_fields(text: str, names: set[str]) -> str | None:
    """`text` with each top-level field in `names` (and its block) removed;
    None if the text is not shaped as expected (unbalanced brackets)."""
    spans, depth, i = [], 0, 0
    while i < len(text):
        skipped = _skip(text, i)
        if skipped is not None:
            i = skipped
            continue
        char = text[i]
        if char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth < 0:
                return None
        elif (
            depth == 0
            and (char.isalpha() or char == "_")
            and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_"))
        ):
            end = i
            while end < len(text) and (text[end].isalnum() or text[end] == "_"):
                end += 1
            if text[i:end] in names:
                block_end = _block_end(text, end)
                if block_end is None:
                    return None
                spans.append((i, block_end))
                i = block_end
                continue
            i = end
            continue
        i += 1
    if depth != 0:
        return None
    for start, end in reversed(spans):
        # The whole line goes when the field was alone on it (its comment with it).
        line_start = text.rfind("\n", 0, start) + 1
        line_end = text.find("\n", end)
        line_end = len(text) if line_end < 0 else line_end
        rest = text[end:line_end].strip()
        if not text[line_start:start].strip() and (not rest or rest.startswith("#")):
            start, end = line_start, min(line_end + 1, len(text))
        text = text[:start] + text[end:]
    return text


def _block_end(text: str, after_name: int) -> int | None:
    """Where the value after a field's name ends: `name { ... }`, `name: { ... }` or `name [ ... ]`."""
    i = after_name
    while i < len(text) and (text[i].isspace() or text[i] == ":"):
        i += 1
    if i >= len(text) or text[i] not in "{[":
        return None
    depth = 0
    while i < len(text):
        skipped = _skip(text, i)
        if skipped is not None:
            i = skipped
            continue
        char = text[i]
        if char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def _skip(text: str, i: int) -> int | None:
    """Past the comment or quoted string that starts at `i`; None if none does."""
    char = text[i]
    if char == "#":
        end = text.find("\n", i)
        return len(text) if end < 0 else end
    if char in "\"'":
        end = i + 1
        while end < len(text) and text[end] != char:
            end += 2 if text[end] == "\\" else 1
        return end + 1
    return None
