"""Forms parse what a browser sends; the services decide what is allowed."""

from django import forms

from deployments import policy
from deployments.models import Deployment, Environment, GoldenRequest, LoadTest, ModelRepository, Rollout, Target
from deployments.services.environments import POLICY_FIELDS
from workers.targets import registry
from workers.targets.base import Capability


class DeploymentForm(forms.Form):
    """A new deployment. Some fields apply only to some choices: the entry
    script's to entry-script mode, each resource to the kinds of target that
    use it. All are always rendered (a browser without JavaScript shows them
    all); those that do not apply to the chosen mode and target are hidden
    where scripts run, re-rendered by htmx when either changes, and ignored
    on POST, whatever they hold."""

    # Triton mode serves the repository alone: these are the score.py's.
    ENTRY_SCRIPT_FIELDS = ("entry_script", "pip_packages", "worker_count")
    RESOURCE_FIELDS = ("gpu_cores", "cpu_cores", "memory_gb")
    # Choosing one of these changes which fields apply.
    SHAPING_FIELDS = ("target", "mode")

    name = forms.CharField(max_length=63, help_text="lower-case letters, digits and '-'")
    repository = forms.ModelChoiceField(queryset=ModelRepository.objects.none())
    target = forms.ModelChoiceField(queryset=Target.objects.none())
    mode = forms.ChoiceField(choices=Deployment.Mode.choices, initial=Deployment.Mode.TRITON)
    entry_script = forms.CharField(
        required=False,
        # Kept as typed while htmx re-renders the fields around it (and never
        # sent in the re-render's query string, which a long script would overflow).
        widget=forms.Textarea(attrs={"rows": 8, "class": "mono", "hx-preserve": "true"}),
        help_text="score.py with init() and run()",
    )
    pip_packages = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "hx-preserve": "true"}),
        help_text="one requirement per line",
    )
    worker_count = forms.IntegerField(
        min_value=1,
        max_value=32,
        initial=1,
        label="Worker processes",
        help_text="WORKER_COUNT: how many processes serve the entry script",
    )
    gpu_cores = forms.FloatField(required=False, min_value=0, label="GPU cores")
    cpu_cores = forms.FloatField(required=False, min_value=0, label="CPU cores")
    memory_gb = forms.FloatField(required=False, min_value=0, label="Memory (GB)")
    auth_enabled = forms.BooleanField(required=False, initial=True, label="Require a key (auth_enabled)")

    def __init__(self, *args, user, refresh_url: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["repository"].queryset = (
            ModelRepository.objects.visible_to(user)
            .filter(status=ModelRepository.Status.VALID)
            .order_by("name", "-revision")
        )
        # Only targets the user may deploy to: a dev-only deployer is not
        # offered prod and refused after filling in the whole form.
        self.fields["target"].queryset = policy.restrict(
            Target.objects.select_related("environment"),
            user,
            "deployments.add_deployment",
            environment_field="environment_id",
        )
        self.fields["target"].label_from_instance = lambda t: f"{t.name} ({t.kind_label}, {t.environment.name})"
        self.fields["repository"].label_from_instance = lambda r: f"{r.label} ({r.short_digest})"
        if refresh_url:
            for name in self.SHAPING_FIELDS:
                self.fields[name].widget.attrs.update({"hx-get": refresh_url, "hx-trigger": "change"})
        self.chosen_target = self._chosen_target()
        self.kind = self.chosen_target.descriptor if self.chosen_target else None
        self.chosen_mode = self["mode"].value()
        self._describe_resources()
        for name in (*self.ENTRY_SCRIPT_FIELDS, *self.RESOURCE_FIELDS):
            if not self.applies(name):
                # Hidden where scripts run, where a browser would refuse to
                # submit over a constraint nobody can see (an emptied
                # worker count); the server ignores the field anyway.
                self.fields[name].required = False
                for constraint in ("min", "max"):
                    self.fields[name].widget.attrs.pop(constraint, None)

    def _chosen_target(self) -> Target | None:
        """The target chosen so far (posted, or asked for in the query), if it
        is one the user may deploy to."""
        try:
            return self.fields["target"].to_python(self["target"].value())
        except forms.ValidationError:
            return None

    def _describe_resources(self) -> None:
        """Each resource's default on the chosen target, as its placeholder."""
        defaults = self.chosen_target.settings.get("default_resources", {}) if self.chosen_target else {}
        for name in self.RESOURCE_FIELDS:
            field = self.fields[name]
            if name in defaults:
                field.widget.attrs["placeholder"] = f"{defaults[name]:g}"
                field.help_text = f"empty: the target's default, {defaults[name]:g}"
            elif self.chosen_target:
                field.help_text = "empty: the platform's default"
            else:
                field.help_text = "empty: the target's default"

    @property
    def resource_kinds(self) -> str:
        """The kinds of target whose deployments take resources, for a browser
        that shows the fields whatever the target."""
        return ", ".join(kind.label for kind in registry.KINDS.values() if kind.deployment_resources)

    @property
    def entry_script_available(self) -> bool:
        return self.kind is None or self.kind.has(Capability.ENTRY_SCRIPT)

    def applies(self, name: str) -> bool:
        """Whether the field means anything for the chosen mode and target."""
        if name in self.ENTRY_SCRIPT_FIELDS:
            return self.chosen_mode == Deployment.Mode.ENTRY_SCRIPT and self.entry_script_available
        if name in self.RESOURCE_FIELDS:
            return self.kind is not None and name in self.kind.deployment_resources
        return True

    @property
    def entry_script_applies(self) -> bool:
        return self.applies("entry_script")

    @property
    def resources_apply(self) -> bool:
        return any(self.applies(name) for name in self.RESOURCE_FIELDS)

    def entry_script_fields(self):
        return [(self[name], self.applies(name)) for name in self.ENTRY_SCRIPT_FIELDS]

    def resource_fields(self):
        return [(self[name], self.applies(name)) for name in self.RESOURCE_FIELDS]

    @property
    def sizing(self) -> str:
        """What the chosen target runs each deployment on, where it decides that."""
        return self.kind.sizing(self.chosen_target.settings) if self.kind else ""

    def clean(self):
        cleaned = super().clean()
        for name in (*self.ENTRY_SCRIPT_FIELDS, *self.RESOURCE_FIELDS):
            if not self.applies(name):
                # Ignored, not saved and never an error: hidden, or shown to a
                # browser without JavaScript for another mode or target.
                self.errors.pop(name, None)
                cleaned.pop(name, None)
        return cleaned

    def spec(self) -> dict:
        """The spec's fields for deployment_create: what applies; the service's
        defaults for the rest."""
        data = self.cleaned_data
        spec = {name: data[name] for name in self.ENTRY_SCRIPT_FIELDS if name in data}
        spec["resources"] = {name: data[name] for name in self.RESOURCE_FIELDS if data.get(name) is not None}
        return {**spec, "mode": data["mode"], "auth_enabled": data["auth_enabled"]}


class TargetForm(forms.Form):
    """The settings, credentials and resources of `kinds` (default: every kind
    on offer, each field saying which kinds use it; an existing target's form
    has its own kind's only). The kind's descriptor then checks them."""

    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField()
    environment = forms.ModelChoiceField(queryset=Environment.objects.all())
    auth_method = forms.ChoiceField(choices=Target.AuthMethod.choices, initial=Target.AuthMethod.NONE)
    RESOURCES = (
        ("gpu_cores", "Default GPU cores"),
        ("cpu_cores", "Default CPU cores"),
        ("memory_gb", "Default memory (GB)"),
    )

    def __init__(self, *args, kinds=None, **kwargs):
        super().__init__(*args, **kwargs)
        kinds = kinds or registry.offered()
        # An existing target's kind is shown even where it is no longer offered (switched off here).
        self.fields["kind"].choices = [(kind.name, kind.label) for kind in kinds]
        methods = {method for kind in kinds for method in kind.auth_methods}
        self.fields["auth_method"].choices = [c for c in Target.AuthMethod.choices if c[0] in methods]
        if methods == {Target.AuthMethod.NONE}:
            # Kinds that authenticate to nothing (local): no choice to offer.
            self.fields["auth_method"].widget = forms.HiddenInput()
        self.setting_names, self.secret_names = [], []
        for setting, users in _shared(kinds, lambda kind: [f for f in kind.settings if f.form]):
            self.setting_names.append(setting.name)
            self.fields[setting.name] = forms.CharField(
                required=False, label=setting.label, help_text=_help(setting.help, users, kinds)
            )
        for name, users in _shared(kinds, lambda kind: kind.auth_settings):
            self.setting_names.append(name)
            self.fields[name] = forms.CharField(
                required=False, label=name.replace("_", " ").capitalize(), help_text=_help("", users, kinds)
            )
        for name, users in _shared(kinds, lambda kind: kind.secret_fields):
            self.secret_names.append(name)
            self.fields[name] = forms.CharField(
                required=False,
                widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
                help_text=_help(
                    "stored encrypted, never shown again; leave empty to keep the stored one", users, kinds
                ),
            )
        users = [kind for kind in kinds if kind.default_resources]
        for name, label in self.RESOURCES if users else ():
            self.fields[name] = forms.FloatField(
                required=False, min_value=0, label=label, help_text=_help("", users, kinds)
            )

    @classmethod
    def initial_for(cls, target: Target) -> dict:
        resources = target.settings.get("default_resources", {})
        return {
            "name": target.name,
            "kind": target.kind,
            "environment": target.environment_id,
            "auth_method": target.auth_method,
            **{key: value for key, value in target.settings.items() if key != "default_resources"},
            **resources,
        }

    def settings(self) -> dict:
        data = self.cleaned_data
        settings = {key: data[key] for key in self.setting_names if data.get(key)}
        resources = {k: data[k] for k, _ in self.RESOURCES if data.get(k) is not None}
        if resources:
            settings["default_resources"] = resources
        return settings

    def secrets(self) -> dict:
        return {key: self.cleaned_data[key] for key in self.secret_names if self.cleaned_data.get(key)}


def _shared(kinds, items_of):
    """(item, kinds that have it) for every item any kind has, in first-seen order."""
    found: dict = {}
    for kind in kinds:
        for item in items_of(kind):
            key = getattr(item, "name", item)
            found.setdefault(key, (item, []))[1].append(kind)
    return list(found.values())


def _help(text: str, users: list, kinds: list) -> str:
    if len(users) == len(kinds):
        return text
    which = ", ".join(kind.label for kind in users)
    return f"{text} ({which})" if text else which


class EnvironmentForm(forms.Form):
    """An environment's policy; the service checks the values."""

    name = forms.SlugField(max_length=50)
    position = forms.IntegerField(min_value=0, initial=0, help_text="order in lists")
    approvals_required = forms.IntegerField(min_value=0, max_value=10, initial=0)
    approver_group = forms.CharField(required=False, help_text="only its members may approve (optional)")
    approval_lifetime_hours = forms.IntegerField(min_value=1, initial=72)
    approve_deletes = forms.BooleanField(required=False, initial=True)
    approve_traffic = forms.BooleanField(required=False, initial=True)
    require_rollouts = forms.BooleanField(
        required=False, initial=False, help_text="spec changes go out only as rollouts, never as one-shot redeploys"
    )
    load_tests = forms.ChoiceField(
        choices=Environment.LoadTests.choices,
        initial=Environment.LoadTests.ALLOWED,
        help_text="load tests and config searches against this environment's deployments",
    )
    webhook_url = forms.URLField(required=False, assume_scheme="https")
    webhook_secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="signs each delivery (HMAC-SHA256); stored encrypted, never shown; empty keeps the stored one",
    )

    POLICY = POLICY_FIELDS

    @classmethod
    def initial_for(cls, environment) -> dict:
        initial = {field: getattr(environment, field) for field in cls.POLICY if field != "approver_group"}
        initial["approver_group"] = environment.approver_group.name if environment.approver_group else ""
        return {**initial, "name": environment.name}

    def policy(self) -> dict:
        return {field: self.cleaned_data[field] for field in self.POLICY}


def _parse_steps(text: str) -> list[dict]:
    """ "10:300, 50:300, 100:600" -> [{"traffic": 10, "bake_seconds": 300}, ...] (checked by the service)."""
    steps = []
    for part in (p.strip() for p in text.replace("\n", ",").split(",")):
        if not part:
            continue
        share, _, bake = part.partition(":")
        try:
            steps.append({"traffic": int(share.strip().rstrip("%")), "bake_seconds": int(bake.strip().rstrip("s"))})
        except ValueError:
            raise forms.ValidationError(f"“{part}” is not share:seconds, e.g. 10:300.") from None
    return steps


class RolloutForm(forms.Form):
    repository = forms.ModelChoiceField(queryset=ModelRepository.objects.none(), label="Candidate revision")
    worker_count = forms.IntegerField(min_value=1, max_value=32, label="Worker processes")
    steps = forms.CharField(
        initial="10:300, 50:300, 100:300",
        label="Share : bake time",
        help_text="the candidate's traffic share (%) and bake time (s) of each step, ending at 100",
    )
    on_rollback = forms.ChoiceField(choices=Rollout.OnRollback.choices, initial=Rollout.OnRollback.KEEP)
    min_requests = forms.IntegerField(
        min_value=1, initial=20, help_text="candidate requests a window needs before a gate may fail it"
    )
    golden = forms.ModelMultipleChoiceField(
        queryset=GoldenRequest.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Golden requests",
        help_text="saved from the test-inference console; sent to the candidate at every look",
    )

    def __init__(self, *args, deployment, **kwargs):
        super().__init__(*args, **kwargs)
        from deployments.rollouts.plan import GATES

        self.deployment = deployment
        line = deployment.repository.line_id if deployment.repository else None
        self.fields["repository"].queryset = ModelRepository.objects.filter(
            line_id=line, status=ModelRepository.Status.VALID
        ).order_by("-revision")
        self.fields["repository"].initial = self.fields["repository"].queryset.first()
        self.fields["worker_count"].initial = deployment.worker_count
        self.fields["golden"].queryset = GoldenRequest.objects.filter(deployment=deployment)
        self.fields["golden"].initial = list(self.fields["golden"].queryset)
        signals = deployment.target.descriptor.rollout_signals
        self.gate_names = [name for name in GATES if name in signals]
        for name in self.gate_names:
            defaults = GATES[name]["defaults"]
            self.fields[f"{name}_on"] = forms.BooleanField(required=False, initial=True, label=name)
            self.fields[f"{name}_max_ratio"] = forms.FloatField(min_value=1, initial=defaults["max_ratio"])
            self.fields[f"{name}_floor"] = forms.FloatField(min_value=0, initial=defaults["floor"])

    def clean_steps(self) -> list[dict]:
        return _parse_steps(self.cleaned_data["steps"])

    def changes(self) -> dict:
        count = self.cleaned_data["worker_count"]
        return {"worker_count": count} if count != self.deployment.worker_count else {}

    def gates(self) -> dict:
        gates = {
            name: {"max_ratio": self.cleaned_data[f"{name}_max_ratio"], "floor": self.cleaned_data[f"{name}_floor"]}
            for name in self.gate_names
            if self.cleaned_data.get(f"{name}_on")
        }
        return {**gates, "min_requests": self.cleaned_data["min_requests"]}

    def golden_requests(self) -> list[dict]:
        return [golden.request for golden in self.cleaned_data.get("golden") or []]

    def gate_rows(self):
        """(name, on, max_ratio, floor) bound fields for the template's table."""
        return [
            (name, self[f"{name}_on"], self[f"{name}_max_ratio"], self[f"{name}_floor"]) for name in self.gate_names
        ]


def _parse_counts(text: str) -> list[int]:
    """ "1, 2, 4, 8" -> [1, 2, 4, 8] (the service checks the values)."""
    counts = []
    for part in (p.strip() for p in text.replace(" ", ",").split(",")):
        if not part:
            continue
        if not part.isdigit():
            raise forms.ValidationError(f"“{part}” is not a whole number of clients.")
        counts.append(int(part))
    if not counts:
        raise forms.ValidationError("Give at least one concurrency, e.g. 1, 2, 4, 8.")
    return counts


class LoadTestForm(forms.Form):
    """A load test of one of the deployment's models; the service checks the values."""

    model = forms.ChoiceField(help_text="what the deployment serves")
    version = forms.ChoiceField(required=False, help_text="empty: the version Triton picks")
    concurrency = forms.CharField(
        initial="1, 2, 4, 8", help_text="clients at once for each point, growing (closed loop, as perf_analyzer)"
    )
    window_seconds = forms.FloatField(
        min_value=0.5, max_value=30, initial=2, label="Window (s)", help_text="one measurement window"
    )
    max_trials = forms.IntegerField(
        min_value=3, max_value=20, initial=10, help_text="windows per point before it is reported unstable"
    )
    inputs = forms.ChoiceField(choices=LoadTest.Inputs.choices, initial=LoadTest.Inputs.RANDOM)
    saved_request = forms.ModelChoiceField(
        queryset=GoldenRequest.objects.none(), required=False, help_text="saved from the test-inference console"
    )
    body = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        label="JSON body",
        help_text="entry-script deployments: what every request sends to /score",
    )
    max_requests = forms.IntegerField(min_value=1, required=False, help_text="bound (empty: the server's limit)")
    max_seconds = forms.IntegerField(min_value=10, required=False, help_text="bound (empty: the server's limit)")
    label = forms.CharField(max_length=100, required=False, help_text="tells runs apart, e.g. “before batching”")

    def __init__(self, *args, deployment, **kwargs):
        super().__init__(*args, **kwargs)
        self.deployment = deployment
        models = list(deployment.repository.models.all()) if deployment.repository else []
        self.fields["model"].choices = [(m.name, m.name) for m in models]
        versions = sorted({v for m in models for v in m.served_versions})
        self.fields["version"].choices = [("", "Triton's choice"), *[(str(v), str(v)) for v in versions]]
        self.fields["saved_request"].queryset = GoldenRequest.objects.filter(deployment=deployment)
        if deployment.mode == Deployment.Mode.ENTRY_SCRIPT:
            for name in ("inputs", "saved_request", "version"):
                del self.fields[name]
        else:
            del self.fields["body"]

    def clean_concurrency(self) -> list[int]:
        return _parse_counts(self.cleaned_data["concurrency"])

    def arguments(self) -> dict:
        data = self.cleaned_data
        arguments = {
            "model": data["model"],
            "concurrency": data["concurrency"],
            "window_seconds": data["window_seconds"],
            "max_trials": data["max_trials"],
            "max_requests": data.get("max_requests"),
            "max_seconds": data.get("max_seconds"),
            "label": data.get("label", ""),
        }
        if "body" in self.fields:
            arguments["body"] = data.get("body", "")
        else:
            saved = data.get("saved_request")
            arguments.update(
                version=data.get("version") or None, inputs=data["inputs"], saved_request=saved and saved.pk
            )
        return arguments


class ConfigSearchForm(forms.Form):
    model = forms.ChoiceField(help_text="the model whose config.pbtxt is varied")
    target = forms.ModelChoiceField(queryset=Target.objects.none(), help_text="a local target: scratch deployments")
    concurrency = forms.CharField(initial="1, 4, 8", help_text="each config's sweep")
    latency_budget_ms = forms.FloatField(
        min_value=0.1, max_value=60000, initial=100, label="Latency budget (ms)", help_text="the p95 to stay within"
    )
    window_seconds = forms.FloatField(min_value=0.5, max_value=10, initial=1, label="Window (s)")

    def __init__(self, *args, deployment, targets, **kwargs):
        super().__init__(*args, **kwargs)
        models = list(deployment.repository.models.all()) if deployment.repository else []
        self.fields["model"].choices = [(m.name, m.name) for m in models]
        self.fields["target"].queryset = Target.objects.filter(pk__in=[t.pk for t in targets])
        own = next((t for t in targets if t.pk == deployment.target_id), None)
        self.fields["target"].initial = own or (targets[0] if targets else None)

    def clean_concurrency(self) -> list[int]:
        return _parse_counts(self.cleaned_data["concurrency"])
