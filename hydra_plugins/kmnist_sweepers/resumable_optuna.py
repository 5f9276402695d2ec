"""Hydra's Optuna sweeper, resumable: re-running a sweep's command continues its study.

A Hydra plugin must live in the `hydra_plugins` namespace; the work is kmnist.tasks.study's.
`hydra.sweeper.n_trials` is the study's size: a re-run runs only the trials still missing (a trial
a crash interrupted runs again), and numbers its job folders after the study's trials. One sweep
process runs a study at a time: a second launch while the first runs is refused in one line, and so
is a launch with other fixed overrides than the study's trials ran with.

Hydra imports every plugin at each start (`predict.py` too): this module, like Hydra's own
OptunaSweeper, imports Optuna (and SciPy, SQLAlchemy, pandas...) only when a sweep runs.
"""

from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper  # thin: imports no Optuna


class ResumableOptunaSweeper(OptunaSweeper):
    def sweep(self, arguments):
        # Only when sweeping: Hydra imports plugins at every start.
        from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides
        from kmnist.errors import ConfigError
        from kmnist.tasks.study import lock_study, reseeded_sampler, resume_study

        impl = self.sweeper
        try:  # before resume_study: it takes a RUNNING trial for a crashed one
            held = lock_study(impl.storage, impl.study_name, impl.sweep_dir)
        except ConfigError as err:
            # One line, as the entry points end on a user's mistake.
            raise SystemExit(f"error: {err}") from None
        with held:  # for the whole sweep
            # The fixed overrides, as the sweeper records them on every trial (its sweep() parses
            # them the same way).
            _, fixed = create_params_from_overrides([*impl._parse_sweeper_params_config(), *arguments])
            try:
                impl.n_trials, impl.job_idx = resume_study(
                    impl.storage, impl.study_name, impl.n_trials, fixed
                )
            except ConfigError as err:
                raise SystemExit(f"error: {err}") from None
            if (
                sampler := reseeded_sampler(impl.config.hydra.sweeper.get("sampler"), impl.job_idx)
            ) is not None:
                impl.sampler = sampler
            return super().sweep(arguments)
