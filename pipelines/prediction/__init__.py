"""The prediction DAG's logic: new good_data files, sent to the model API once, in a ledger."""
