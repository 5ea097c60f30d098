-- One PostgreSQL server, three databases: Dagster's storage, MLflow's tracking store, the score store.
CREATE DATABASE dagster;
CREATE DATABASE mlflow;
CREATE DATABASE scores;
