"""The optuna side of a search: a study in SQLite that survives stops and kills, asked and told in batches.

Two objectives, both minimised: the cost and the top-1 drop; the drop limit is a constraint (``drop - max_drop``,
feasible at 0 or below) that TPE and NSGA-II read from the trial (optuna 5's ``Trial.set_constraint``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .search_space import ChoiceDimension, round_value
from .search_types import CandidateResult, SearchConfig


class OptunaStudy:
    """The study of one search. ``seed`` is the project's; the sampler adds the number of trials already made, so a
    resumed run does not draw its first points again."""

    def __init__(self, db: Path, config: SearchConfig, seed: int) -> None:
        import optuna
        from optuna.trial import TrialState

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.config = config
        db.parent.mkdir(parents=True, exist_ok=True)
        self.storage = optuna.storages.RDBStorage(f"sqlite:///{db.resolve()}")
        self.study = optuna.create_study(storage=self.storage, study_name=config.name, load_if_exists=True,
                                         directions=["minimize", "minimize"])
        self.asked: dict[int, Any] = {}  # trials asked and not told yet
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):  # a killed run's
            self._requeue(t.number, t.params)
        self.study.sampler = _sampler(config, seed + len(self.study.get_trials(deepcopy=False)))

    def finished(self) -> int:
        """Trials with a result (complete or failed), not counting those closed to be asked again."""
        from optuna.trial import TrialState

        states = (TrialState.COMPLETE, TrialState.FAIL)
        return sum(1 for t in self.study.get_trials(deepcopy=False, states=states) if not t.user_attrs.get("requeued"))

    def ask(self) -> tuple[dict[str, Any], Any]:
        """The next candidate's values and its trial."""
        trial = self.study.ask()
        self.asked[trial.number] = trial
        values = {}
        for d in self.config.space.dimensions:
            if isinstance(d, ChoiceDimension) or d.values is not None:
                values[d.name] = trial.suggest_categorical(d.name, d.grid())
            elif d.integer:
                values[d.name] = trial.suggest_int(d.name, int(d.low), int(d.high), step=max(1, int(d.step)))
            else:
                values[d.name] = round_value(trial.suggest_float(d.name, d.low, d.high, step=d.step))
        return values, trial

    def tell(self, trial, result: CandidateResult) -> None:
        from optuna.trial import TrialState

        self.asked.pop(trial.number, None)
        cost = result.cost(self.config.minimise)
        if result.status != "done" or cost is None or result.drop is None:
            self.study.tell(trial, state=TrialState.FAIL)
            return
        trial.set_constraint("max_drop", result.drop - self.config.max_drop)
        trial.set_user_attr("candidate", result.key)
        self.study.tell(trial, [float(cost), float(result.drop)])

    def close(self) -> None:
        """Ask again for what was asked and not told (a Stop), and release the SQLite file."""
        for trial in list(self.asked.values()):
            self._requeue(trial.number, trial.params)
        self.asked.clear()
        self.storage.engine.dispose()  # Windows cannot remove or move an open database

    def _requeue(self, number: int, params: dict) -> None:
        """Close an unfinished trial as failed (marked ``requeued``) and enqueue its point again."""
        from optuna.trial import TrialState

        trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study._study_id, number)
        self.storage.set_trial_user_attr(trial_id, "requeued", True)
        self.storage.set_trial_state_values(trial_id, TrialState.FAIL)
        self.study.enqueue_trial(params)


def _sampler(config: SearchConfig, seed: int):
    import optuna

    if config.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=max(4, min(50, config.trials // 3)), seed=seed)
    return optuna.samplers.TPESampler(seed=seed)
