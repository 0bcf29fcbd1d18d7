from django.apps import AppConfig


class ScriptsConfig(AppConfig):
    """Post-rotation scripts with Keeper's contract, and "Run PAM scripts only" rotation."""

    name = "scripts"
    verbose_name = "Post-rotation scripts"

    def ready(self):
        """Register on the engine's hooks and the Keeper importer/exporter (the engine never names this app)."""
        from records.models import RotationType
        from rotation import hooks
        from scripts import keeper, runner

        keeper.register()
        hooks.register_after_commit(runner.after_commit, wants=runner.accounts_with_scripts)
        hooks.register_changer(
            RotationType.SCRIPTS_ONLY,
            hooks.ChangeStrategy(
                refused=runner.refused_for_change,
                change=runner.change_by_scripts,
                unresolved=runner.report_unresolved,
                settle=runner.settle_stale_runs,
            ),
        )
        hooks.register_housekeeping(runner.settle_stale_runs)
