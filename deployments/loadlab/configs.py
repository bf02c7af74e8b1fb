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


def rewrite(config_text: str, config: dict) -> str:
    """config.pbtxt with the config's batching and instance count."""
    message = mc.ModelConfig()
    try:
        text_format.Parse(config_text or "", message)
    except text_format.ParseError as exc:
        raise DomainError(f"The model's config.pbtxt cannot be read: {exc}", path="model") from None
    message.ClearField("dynamic_batching")
    if config["dynamic_batching"]:
        message.dynamic_batching.SetInParent()
        if config["max_queue_delay_us"]:
            message.dynamic_batching.max_queue_delay_microseconds = config["max_queue_delay_us"]
    if message.instance_group:
        for group in message.instance_group:
            group.count = config["instances"]
    else:
        message.instance_group.add(count=config["instances"])
    return text_format.MessageToString(message)
