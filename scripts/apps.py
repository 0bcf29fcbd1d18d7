from django.apps import AppConfig


class ScriptsConfig(AppConfig):
    """Post-rotation scripts with Keeper's contract, and "Run PAM scripts only" rotation."""

    name = "scripts"
    verbose_name = "Post-rotation scripts"

    def ready(self):
        from scripts import keeper

        keeper.register()
