"""Forms parse what a browser sends; the services decide what is allowed."""

from django import forms

from deployments.models import Deployment, ModelRepository, Target


class DeploymentForm(forms.Form):
    name = forms.CharField(max_length=63, help_text="lower-case letters, digits and '-'")
    repository = forms.ModelChoiceField(queryset=ModelRepository.objects.none())
    target = forms.ModelChoiceField(queryset=Target.objects.none())
    mode = forms.ChoiceField(choices=Deployment.Mode.choices, initial=Deployment.Mode.TRITON)
    entry_script = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 8, "class": "mono"}))
    pip_packages = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), help_text="one requirement per line"
    )
    worker_count = forms.IntegerField(min_value=1, max_value=32, initial=1, label="WORKER_COUNT")
    gpu_cores = forms.FloatField(required=False, min_value=0)
    cpu_cores = forms.FloatField(required=False, min_value=0)
    memory_gb = forms.FloatField(required=False, min_value=0)
    auth_enabled = forms.BooleanField(required=False, initial=True, label="Require a key (auth_enabled)")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["repository"].queryset = ModelRepository.objects.visible_to(user).filter(
            status=ModelRepository.Status.VALID
        )
        self.fields["target"].queryset = Target.objects.select_related("environment")

    def resources(self) -> dict:
        return {
            key: self.cleaned_data[key]
            for key in ("gpu_cores", "cpu_cores", "memory_gb")
            if self.cleaned_data.get(key) is not None
        }
