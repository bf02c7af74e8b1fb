"""Which of a model's version folders Triton loads: its config's
version_policy, and Triton's default (the latest one) without one."""

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc


def served_versions(versions: list[int], config_text: str, *, config_known: bool = True) -> list[int]:
    """`config_text` "" with `config_known`: no config.pbtxt (auto-complete).
    A config that cannot be read serves, as far as anyone can tell, all."""
    versions = sorted(versions)
    if not config_known:
        return versions
    config = mc.ModelConfig()
    try:
        text_format.Parse(config_text, config)
    except text_format.ParseError:
        return versions
    policy = config.version_policy
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return versions
    if choice == "specific":
        return sorted(set(policy.specific.versions) & set(versions))
    latest = policy.latest.num_versions if choice == "latest" else 1
    return versions[-max(latest, 1) :]
