"""MLflow "model from code": the registered ensemble as a pyfunc.

Logged by path (`python_model=<this file>`); the fitted members travel as the `ensemble` artifact.
predict(features) → risk_probability, member_<name> probabilities, confidence, anomaly_score.
"""

import joblib
import mlflow
from mlflow.pyfunc import PythonModel


class EnsemblePyfunc(PythonModel):
    def load_context(self, context):
        self.ensemble = joblib.load(context.artifacts["ensemble"])

    def predict(self, context, model_input, params=None):
        return self.ensemble.predict(model_input)


mlflow.models.set_model(EnsemblePyfunc())
