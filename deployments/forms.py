"""Forms parse what a browser sends; the services decide what is allowed."""

from django import forms

from deployments.models import Deployment, ModelRepository, Target


class DeploymentForm(forms.Form):
    name = forms.CharField(max_length=63, help_text="lower-case letters, digits and '-'")
    repository = forms.ModelChoiceField(queryset=ModelRepository.objects.none())
    target = forms.ModelChoiceField(queryset=Target.objects.none())
    mode = forms.ChoiceField(choices=Deployment.Mode.choices, initial=Deployment.Mode.TRITON)
    entry_script = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "class": "mono"}),
        help_text="entry_script mode only: score.py with init() and run()",
    )
    pip_packages = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), help_text="one requirement per line"
    )
    worker_count = forms.IntegerField(min_value=1, max_value=32, initial=1, label="WORKER_COUNT")
    gpu_cores = forms.FloatField(
        required=False, min_value=0, label="GPU cores", help_text="empty: the target's default"
    )
    cpu_cores = forms.FloatField(required=False, min_value=0, label="CPU cores")
    memory_gb = forms.FloatField(required=False, min_value=0, label="Memory (GB)")
    auth_enabled = forms.BooleanField(required=False, initial=True, label="Require a key (auth_enabled)")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["repository"].queryset = ModelRepository.objects.visible_to(user).filter(
            status=ModelRepository.Status.VALID
        )
        self.fields["target"].queryset = Target.objects.select_related("environment")
        self.fields["target"].label_from_instance = lambda t: f"{t.name} ({t.get_kind_display()}, {t.environment.name})"
        self.fields["repository"].label_from_instance = lambda r: f"{r.name} ({r.short_digest})"

    def resources(self) -> dict:
        return {
            key: self.cleaned_data[key]
            for key in ("gpu_cores", "cpu_cores", "memory_gb")
            if self.cleaned_data.get(key) is not None
        }
