"""Global explanations: which words push a model toward and away from each class, over a whole split.

Each of N sentences (the Evaluate page's seeded sample) is explained for its *predicted* class with one signed
explainer; the word scores are pooled per class (:mod:`.aggregate`: a two-class model's scores count, negated,
for the other class too), words of kinds that should carry no meaning for the task (names, numbers,
punctuation: :mod:`.words`) that also matter are flagged as possible shortcuts, and each word keeps the sentences
where it pushed hardest. Two models explained on the same sentences give the words that gained or lost importance
(:mod:`.report` holds the results).

Sentences run in this process or on Ray (:mod:`model_zoo.engine`) and are cached per sentence on disk
(:mod:`.run`); the work runs as the background job ``global`` or as ``python -m explainers global`` (:mod:`.job`).
The default explainer is the most faithful one the model can afford at that size (:mod:`.choice`).
"""

from explainers.global_importance.aggregate import (
    ClassShift,
    ClassWords,
    Comparison,
    WordShift,
    WordStat,
    aggregate,
    compare,
)
from explainers.global_importance.choice import (
    AFFORDABLE_SECONDS,
    Choice,
    Ranking,
    cached_ranking,
    default_method,
)
from explainers.global_importance.job import add_cli, load_split, pick_method, run_job, split_title
from explainers.global_importance.report import GlobalReport, GlobalResult
from explainers.global_importance.run import (
    ALIASES,
    CACHE_VERSION,
    GlobalCancelled,
    GlobalConfig,
    dataset_digest,
    explain_global,
    explain_sentences,
    explain_split,
    resolve_method,
    settings_config,
    signed_methods,
)
from explainers.global_importance.words import FIRST_NAMES, shortcut_kind, word_key

__all__ = ["AFFORDABLE_SECONDS", "ALIASES", "CACHE_VERSION", "FIRST_NAMES", "Choice", "ClassShift", "ClassWords",
           "Comparison", "GlobalCancelled", "GlobalConfig", "GlobalReport", "GlobalResult", "Ranking", "WordShift",
           "WordStat", "add_cli", "aggregate", "cached_ranking", "compare", "dataset_digest", "default_method",
           "explain_global", "explain_sentences", "explain_split", "load_split", "pick_method", "resolve_method",
           "run_job", "settings_config", "shortcut_kind", "signed_methods", "split_title", "word_key"]
