"""Never runs: this model is broken on purpose (see examples/README.md)."""


class TritonPythonModel:
    def execute(self, requests):
        raise NotImplementedError
