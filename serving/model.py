"""What a servable gridrisk model is: booster + calibrator + feature spec + reason texts, packaged for MLflow.

`training/` builds a `PackagedModel` and logs it with `log_packaged_model`; `serving/` loads it by alias.
Feature encoding lives here (`FeatureSpec.matrix`) so training and serving turn frames into the same numbers.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.feature_sets import FEATURE_DOCS, RESTATED, FeatureDoc, feature_set_version
from features.schema import VALUE_LABELS

PACKAGE_FILE = "package.json"
# An isotonic calibrator's flat steps are tilted by at most this much (`training.calibrate`), so the booster's
# order still decides who is visited first. Probabilities this close are one level: they share a band and a
# percentile, or two customers shown at the same 6.6 % would fall either side of a band's threshold.
TIE_BREAK = 1e-6
BOOSTER_FILE = "booster.txt"


@dataclass
class FeatureSpec:
    """Ordered model inputs; categorical columns carry their levels (codes are positions, unknown -> NaN)."""

    names: list[str]
    categorical: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, names: list[str]) -> FeatureSpec:
        """Learn categorical levels from a training frame (object/string/category columns)."""
        categorical: dict[str, list[str]] = {}
        for name in names:
            col = frame[name]
            if (
                isinstance(col.dtype, pd.CategoricalDtype)
                or col.dtype == object
                or pd.api.types.is_string_dtype(col)
            ):
                levels = sorted({str(v) for v in col.dropna().unique()})
                categorical[name] = levels
        return cls(names=list(names), categorical=categorical)

    @property
    def categorical_indices(self) -> list[int]:
        return [i for i, n in enumerate(self.names) if n in self.categorical]

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """The float64 matrix the booster sees; missing columns are an error, extra columns are ignored."""
        missing = [n for n in self.names if n not in frame.columns]
        if missing:
            raise KeyError(f"missing feature columns: {missing}")
        out = np.empty((len(frame), len(self.names)), dtype=np.float64)
        for i, name in enumerate(self.names):
            col = frame[name]
            levels = self.categorical.get(name)
            if levels is not None:
                codes = pd.Categorical(col.astype("string").astype(object), categories=levels).codes
                out[:, i] = np.where(codes < 0, np.nan, codes)
            else:
                out[:, i] = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        return out


@dataclass
class Calibrator:
    """Maps the booster's raw probability to a calibrated one; JSON-serialisable (no pickles)."""

    method: str  # "isotonic" | "platt" | "none"
    x: list[float] = field(default_factory=list)  # isotonic thresholds
    y: list[float] = field(default_factory=list)
    a: float = 1.0  # platt: sigmoid(a * logit(p) + b)
    b: float = 0.0

    def apply(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype=np.float64)
        if self.method == "isotonic":
            return np.interp(p, self.x, self.y)
        if self.method == "platt":
            eps = 1e-12
            logit = np.log(np.clip(p, eps, 1 - eps) / np.clip(1 - p, eps, 1))
            return 1.0 / (1.0 + np.exp(-(self.a * logit + self.b)))
        return p


@dataclass
class ReasonText:
    """Sentence templates for one feature, formatted with the fields {value} {abs_value} {dir_zh} {dir_en}.

    A signed measure whose sentence turns around below zero ("paid 5 days before the due date" against "5 days
    after it") carries the sentences for a negative value too; packages saved without them still load."""

    zh: str
    en: str
    zh_negative: str | None = None
    en_negative: str | None = None

    @classmethod
    def from_doc(cls, doc: FeatureDoc) -> ReasonText:
        return cls(zh=doc.zh, en=doc.en, zh_negative=doc.zh_negative, en_negative=doc.en_negative)

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> ReasonText:
        """From a saved package; keys a later release may add are ignored, so an older service still loads
        its models (this release added the negative-value sentences)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in known})

    def template(self, lang: str, negative: bool) -> str:
        signed = self.zh_negative if lang == "zh" else self.en_negative
        return signed if negative and signed else (self.zh if lang == "zh" else self.en)


@dataclass
class Reason:
    feature: str
    value: float | str | None
    contribution: float
    direction: str  # "raises" | "lowers"
    text: str


@dataclass
class PackagedModel:
    task: str
    booster: Any  # lightgbm.Booster
    spec: FeatureSpec
    calibrator: Calibrator
    reasons: dict[str, ReasonText] = field(default_factory=dict)
    bands: dict[str, float] = field(default_factory=lambda: {"high": 0.5, "medium": 0.2})  # min probability
    score_quantiles: list[float] = field(default_factory=list)  # 101 quantiles of reference scores
    metrics: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    # -- scoring -------------------------------------------------------------------------------------
    def raw_margin(self, X: np.ndarray) -> np.ndarray:
        return self.booster.predict(X, raw_score=True)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        margin = self.raw_margin(X)
        return self.calibrator.apply(1.0 / (1.0 + np.exp(-margin)))

    def contributions(self, X: np.ndarray, num_threads: int | None = None) -> np.ndarray:
        """TreeSHAP in log-odds from LightGBM itself: shape (n, features + 1), base value last.

        ``num_threads`` (default: LightGBM's, all cores) lets callers score a few rows on one thread.
        """
        extra = {"num_threads": num_threads} if num_threads else {}
        return np.asarray(self.booster.predict(X, pred_contrib=True, **extra))

    def reason_magnitude(self, contributions: np.ndarray) -> np.ndarray:
        """|contribution| per feature column, the order reasons are picked in; of two features that state
        one fact (`RESTATED`), the weaker is put last (-1) in each row, so a row never shows both."""
        magnitude = np.abs(contributions)
        names = self.spec.names
        for a, b in RESTATED:
            if a in names and b in names:
                i, j = names.index(a), names.index(b)
                weaker = np.where(magnitude[:, i] >= magnitude[:, j], j, i)
                magnitude[np.arange(len(magnitude)), weaker] = -1.0
        return magnitude

    def band(self, p: np.ndarray) -> np.ndarray:
        names = sorted(self.bands, key=lambda name: self.bands[name], reverse=True)
        out = np.full(len(p), "low", dtype=object)
        level = np.asarray(p, dtype=np.float64) + TIE_BREAK
        for name in reversed(names):
            out[level >= self.bands[name]] = name
        return out

    def percentile(self, p: np.ndarray) -> np.ndarray:
        if not self.score_quantiles:
            return np.full(len(p), np.nan)
        q = np.asarray(self.score_quantiles)
        return np.searchsorted(q, np.asarray(p, dtype=np.float64) + TIE_BREAK, side="right") / len(q) * 100.0

    def reason_text(self, feature: str, value: Any, lang: str) -> str:
        if isinstance(value, float) and value == 0:
            value = 0.0  # -0.0 (JSON `-0.0`, a negated zero in the feature engine) prints no "-0"
        template = self.reasons.get(feature)
        if template is None:
            return f"{feature} = {format_value(value)}"
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return missing_value_text(template.template(lang, negative=False), lang)
        numeric = isinstance(value, int | float)
        text = template.template(lang, negative=numeric and value < 0)
        if numeric:
            text = catalogue_sentence(feature, text, float(value), lang)
        shown = value if numeric else value_label(feature, value, lang)
        if numeric and value < 0 and prints_as_zero(text, value):
            shown = 0.0  # -0.3 days printed whole is 0, not "-0"
        try:
            return text.format(
                value=shown,
                abs_value=abs(value) if numeric else shown,
                dir_zh=("上升" if numeric and value >= 0 else "下降"),
                dir_en=("up" if numeric and value >= 0 else "down"),
            )
        except (ValueError, TypeError):
            return f"{feature} = {format_value(value)}"

    def decode(self, feature: str, value: float) -> float | str | None:
        levels = self.spec.categorical.get(feature)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        if levels is not None:
            return levels[int(value)]
        return float(value)

    def top_reasons(
        self, X: np.ndarray, k: int = 5, lang: str = "zh", contrib: np.ndarray | None = None
    ) -> list[list[Reason]]:
        """Top-k features by absolute contribution for each row, with a sentence each."""
        contrib = self.contributions(X) if contrib is None else contrib
        feats = contrib[:, :-1]
        k = min(k, feats.shape[1])
        top = np.argsort(-self.reason_magnitude(feats), axis=1, kind="stable")[:, :k]
        out: list[list[Reason]] = []
        for r in range(len(X)):
            row = []
            for j in top[r]:
                c = float(feats[r, j])
                name = self.spec.names[j]
                value = self.decode(name, float(X[r, j]))
                row.append(
                    Reason(
                        feature=name,
                        value=value,
                        contribution=c,
                        direction="raises" if c >= 0 else "lowers",
                        text=self.reason_text(name, value, lang),
                    )
                )
            out.append(row)
        return out

    # -- persistence ---------------------------------------------------------------------------------
    def save(self, path: Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(path / BOOSTER_FILE))
        doc = {
            "task": self.task,
            "spec": asdict(self.spec),
            "calibrator": asdict(self.calibrator),
            "reasons": {k: asdict(v) for k, v in self.reasons.items()},
            "bands": self.bands,
            "score_quantiles": self.score_quantiles,
            "metrics": self.metrics,
            "info": self.info,
        }
        (path / PACKAGE_FILE).write_text(json.dumps(doc, ensure_ascii=False, indent=1, default=float))
        return path

    @classmethod
    def load(cls, path: Path) -> PackagedModel:
        import lightgbm

        path = Path(path)
        doc = json.loads((path / PACKAGE_FILE).read_text())
        booster = lightgbm.Booster(model_file=str(path / BOOSTER_FILE))
        return cls(
            task=doc["task"],
            booster=booster,
            spec=FeatureSpec(**doc["spec"]),
            calibrator=Calibrator(**doc["calibrator"]),
            reasons={k: ReasonText.from_json(v) for k, v in doc["reasons"].items()},
            bands=doc["bands"],
            score_quantiles=doc["score_quantiles"],
            metrics=doc["metrics"],
            info=doc["info"],
        )


_VALUE = re.compile(r"\{(?:abs_)?value(?::[^}]*)?\}")
_DIRECTION = re.compile(r"\{dir_(?:zh|en)\}")
NO_DATA = {"zh": "（无数据）", "en": " (no data)"}


def definitions_skew(info: dict, task: str) -> str | None:
    """A model trained on another revision of the feature definitions (`feature_set_version`) than this code
    computes: its features are scored as defined now, not as it learned them. Said, not refused: most
    definitions change only for some customers (two-monthly bills, say); retraining ends it."""
    learned, now = info.get("feature_set_version"), feature_set_version(task)
    if not learned or learned == now:
        return None
    return (
        f"the model was trained on feature set {learned}, this code computes {now}: retrain it "
        f"(gridrisk train --task {task}) so that it learns the features as they are computed now"
    )


def value_label(feature: str, value: Any, lang: str) -> str:
    """A categorical reason value in words (两部制, not two_part) where the feature holds a contract column's
    codes; other values (an industry code, a category this release does not know) as they are."""
    doc = FEATURE_DOCS.get(feature)
    labels = VALUE_LABELS.get(lang, VALUE_LABELS["en"]).get(doc.labels, {}) if doc and doc.labels else {}
    return labels.get(str(value), format_value(value))


def catalogue_sentence(feature: str, sentence: str, value: float, lang: str) -> str:
    """The model's sentence as the catalogue (`FEATURE_DOCS`) words it for this value: a flag's state
    (集团客户, not 集团客户标志 = 1), a count of one in the singular (1 day, not 1 days), a change that shows
    as 0 without a direction it does not show (基本持平 / about the same, not 下降0% / down 0 %), a value at
    the feature's cap as "more than" it (超过1000% / more than 1000 %).

    Read at request time from this release's catalogue, as a category's words are (`value_label`), so models
    packed before read so too; only where the model's sentence is the catalogue's own, so a model trained
    with other words keeps them."""
    doc = FEATURE_DOCS.get(feature)
    negative = value < 0
    if doc is None or sentence != ReasonText.from_doc(doc).template(lang, negative):
        return sentence
    zh = lang == "zh"
    if value in (0.0, 1.0):
        state = (doc.zh_on if zh else doc.en_on) if value else (doc.zh_off if zh else doc.en_off)
        if state is not None:
            return state
    if doc.zh_flat and doc.en_flat and prints_as_zero(sentence, value):
        return doc.zh_flat if zh else doc.en_flat  # -0.3 % printed in whole percent
    if not zh and shown_number(sentence, value) == "1":  # 0.6 days shows as "1 day" too
        return (doc.en_negative_one if negative and doc.en_negative else doc.en_one) or sentence
    if doc.cap is not None and abs(value) >= doc.cap and (field := _VALUE.search(sentence)):
        # The feature stops at its cap: 76,695 kWh after 1,000 read "up 1000 %", as if measured.
        return sentence[: field.start()] + ("超过" if zh else "more than ") + sentence[field.start() :]
    return sentence


def prints_as_zero(sentence: str, value: float) -> bool:
    """Whether the sentence prints the value with no digit but 0 (-0.3 in whole percent)."""
    shown = shown_number(sentence, value)
    return bool(shown) and not any(digit in shown for digit in "123456789")


def shown_number(sentence: str, value: float) -> str:
    """The value as the sentence prints it (its first {value}/{abs_value} with its format), "" for none."""
    field = _VALUE.search(sentence)
    return field.group(0).format(value=value, abs_value=abs(value)) if field else ""


def missing_value_text(template: str, lang: str) -> str:
    """A reason's sentence for a value the customer has none of (a new customer without 12 months of bills, no
    payment yet): the sentence with "—" for the number, no direction, and "no data", never the raw feature
    name. LightGBM routes a missing value on its own branch, so such a reason can be a top one."""
    text = _DIRECTION.sub("", _VALUE.sub("—", template))
    return re.sub(r"\s{2,}", " ", text).strip() + NO_DATA.get(lang, NO_DATA["en"])


def format_value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def pyfunc_class() -> type:
    """The MLflow pyfunc wrapper, built lazily so importing this module does not import mlflow."""
    import mlflow.pyfunc

    class GridriskPyfunc(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined]
        """`predict` takes a frame of feature columns and returns calibrated probability and raw margin."""

        def load_context(self, context: Any) -> None:
            self.package = PackagedModel.load(Path(context.artifacts["package"]))

        def predict(
            self, context: Any, model_input: pd.DataFrame, params: dict | None = None
        ) -> pd.DataFrame:
            X = self.package.spec.matrix(model_input)
            margin = self.package.raw_margin(X)
            prob = self.package.calibrator.apply(1.0 / (1.0 + np.exp(-margin)))
            # On the input's own index: `frame.assign(probability=out["probability"])` on a filtered or
            # reordered frame lined up by position gave NaN or another customer's score.
            index = model_input.index if isinstance(model_input, pd.DataFrame) else None
            return pd.DataFrame({"probability": prob, "raw_margin": margin}, index=index)

    return GridriskPyfunc


PYFUNC_ARTIFACT_DIR = "model"


def load_packaged_model(
    model_uri: str, dst: Path | None = None, tracking_uri: str | None = None
) -> PackagedModel:
    """Load the package behind a model URI (``models:/gridrisk-arrears@champion``) without pyfunc overhead.

    With ``tracking_uri`` (also the registry URI) nothing depends on MLflow's process-global URI: MLflow 3
    resolves a ``models:/`` URI against the global registry whatever ``registry_uri`` it is given, so a
    fresh process (``gridrisk serve`` without ``MLFLOW_TRACKING_URI``) looked in ``./mlflow.db``. Such URIs
    are resolved here, with a client bound to ``tracking_uri``, to the version's artifact location.
    """
    import mlflow.artifacts

    artifact_uri = model_uri
    if tracking_uri is not None and model_uri.startswith("models:/"):
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        name, version = model_reference(model_uri, client)
        artifact_uri = client.get_model_version_download_uri(name, version)
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=artifact_uri,
        dst_path=str(dst) if dst else None,
        tracking_uri=tracking_uri,
        registry_uri=tracking_uri,
    )
    return PackagedModel.load(Path(local) / "artifacts" / "package")


def model_reference(model_uri: str, client: Any) -> tuple[str, str]:
    """(name, version) of ``models:/<name>/<version>`` or ``models:/<name>@<alias>``."""
    ref = model_uri.removeprefix("models:/").strip("/")
    if "@" in ref:
        name, alias = ref.split("@", 1)
        return name, str(client.get_model_version_by_alias(name, alias).version)
    name, sep, version = ref.partition("/")
    if not sep or not version or "/" in version:
        raise ValueError(f"expected models:/<name>/<version> or models:/<name>@<alias>, got {model_uri!r}")
    return name, version
