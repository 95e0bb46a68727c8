"""What a running ChartVault tells the engineer on call: its own measurements and its logs.

``metrics`` holds the process-wide Prometheus instruments that the pipeline, the services and the
API record into (the catalog-derived gauges are computed at scrape time by the services);
``logs`` formats log records as JSON lines carrying ids, never patient data. Both sit at the
bottom of the layers, beside ``config``, so every layer may record without importing another.
"""
