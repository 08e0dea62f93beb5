"""One MultiWorkerMirroredStrategy worker for test_multiworker: the first epoch's input of `recsys.fm` on a
streamed Criteo file as `fit` sees it, then `python -m MODULE train` on it.

Usage (TF_CONFIG set by the caller): python -m tests.recsys.mw_ctr_worker OUT.json MODULE DATA_FILE BATCH
RUN_DIR [more train flags]. OUT.json: `replica_rows` (the rows of each of this worker's replicas in every
step of epoch 0), `replicas` (in sync) and the train command's exit code.
"""
import importlib
import json
import sys
from pathlib import Path

from common import distribute
from recsys import criteo, fm


def main(out, module, data_file, batch_size, run_dir, *flags):
    strategy = distribute.make_strategy("multi-worker")  # the instance `train` gets too
    fit = criteo.prepare_criteo(data_file).part("fit")
    rows = [[int(t.shape[0]) for t in strategy.experimental_local_results(labels)]
            for _, labels in fm.dataset(fm.Config(dataset="criteo", batch_size=int(batch_size)), fit, 0, strategy)]
    code = importlib.import_module(module).main(
        ["train", "--dataset", "criteo", "--data-dir", str(Path(data_file).parent), "--data-file",
         Path(data_file).name, "--batch-size", batch_size, "--strategy", "multi-worker", "--run-dir", run_dir,
         *flags])
    Path(out).write_text(json.dumps({"replica_rows": rows, "replicas": strategy.num_replicas_in_sync,
                                     "exit": code}))
    return code


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
