"""Dataset evaluation: which explainer to trust for this model, measured over N sentences of a split.

Each selected explainer explains the predicted class of each sentence; its faithfulness (comprehensiveness
and sufficiency AOPC, deletion and insertion AUC, and a random-ranking baseline on the same sentences) is
computed with one ``predict_proba`` call per sentence for all explainers together. The report gives per
explainer the mean and 95% confidence interval (Student's t) of each metric, the mean agreement with the
other explainers, the mean cost, and the model-randomisation sanity check (:mod:`explainers.sanity`) on the
first ``sanity_n`` sentences. Because the explainers are scored on the same sentences, the ranking says which
differences are real: each pair is compared with a paired Wilcoxon signed-rank test on per-sentence
comprehensiveness AOPC, Holm-adjusted over all pairs; rows that do not differ significantly share a rank.

Per-sentence results are cached per explainer under ``LOUPE_HOME/reports/eval-cache/``, keyed by a hash
of (model id + revision, dataset, split, n, explainer + config, metric settings), and written every few
sentences, so a second run (or a resumed job, or a run that adds one explainer) reuses what is done.
"""

from explainers.evaluation.job import add_cli, parse_overrides, run_job
from explainers.evaluation.ranking import (
    ALPHA,
    METRICS,
    Estimate,
    EvaluationReport,
    MethodSummary,
    estimate,
    paired_tests,
)
from explainers.evaluation.run import (
    CACHE_VERSION,
    SANITY_N,
    EvaluationCancelled,
    evaluate,
    model_revision,
    sample,
    sanity_depths,
)

__all__ = ["ALPHA", "CACHE_VERSION", "METRICS", "SANITY_N", "Estimate", "EvaluationCancelled", "EvaluationReport",
           "MethodSummary", "add_cli", "estimate", "evaluate", "model_revision", "paired_tests", "parse_overrides",
           "run_job", "sample", "sanity_depths"]
