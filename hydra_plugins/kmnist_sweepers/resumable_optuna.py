"""Hydra's Optuna sweeper, resumable: re-running a sweep's command continues its study.

A Hydra plugin must live in the `hydra_plugins` namespace; the work is kmnist.tasks.study's.
`hydra.sweeper.n_trials` is the study's size: a re-run runs only the trials still missing (a trial
a crash interrupted runs again), and numbers its job folders after the study's trials.
"""

from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper


class ResumableOptunaSweeper(OptunaSweeper):
    def sweep(self, arguments):
        from kmnist.tasks.study import reseeded_sampler, resume_study  # only when sweeping: Hydra imports plugins at every start

        impl = self.sweeper
        impl.n_trials, impl.job_idx = resume_study(impl.storage, impl.study_name, impl.n_trials)
        if (sampler := reseeded_sampler(impl.config.hydra.sweeper.get("sampler"), impl.job_idx)) is not None:
            impl.sampler = sampler
        return super().sweep(arguments)
