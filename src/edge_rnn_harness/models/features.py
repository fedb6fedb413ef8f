"""Names of a dataset's columns that models use as input features (no heavy imports)."""

#: the series to forecast; always a model's first input feature
TARGET = "target"
#: optional covariates: temperature (deg C), workday (0/1), hour of day on the unit circle
COVARIATES = ("temperature", "workday", "hour_sin", "hour_cos")
HOURS_PER_DAY = 24
