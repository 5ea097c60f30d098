"""MLflow "model from code": the registered ensemble as a pyfunc.

Logged by path (`python_model=<this file>`); the fitted members travel as the `ensemble` artifact, a
pickle of `defi_scoring.core.ensemble.TrainedEnsemble`, so loading needs the `defi-scoring` package
(the model's requirements name it). predict(features) → risk_probability, member_<name>
probabilities, confidence, anomaly_score. The DataFrame type hints tell MLflow the input is a frame
(the logged signature names its columns).
"""

from typing import Any

import joblib
import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class EnsemblePyfunc(PythonModel):
    def load_context(self, context) -> None:
        self.ensemble = joblib.load(context.artifacts["ensemble"])

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return self.ensemble.predict(model_input)


mlflow.models.set_model(EnsemblePyfunc())
