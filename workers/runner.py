"""Runs one job from its id: claim it, run Keras, store the outcome, publish progress. No Celery here."""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import redis

from app.core.contract import ExportArguments, FitArguments, JobRequest
from app.core.settings import Settings
from app.core.statuses import TERMINAL_EVENT_OF_STATUS
from workers import exports, jobstate, model_exports, provenance, scheduling, sweeps, training
from workers.array_cache import ArrayCache
from workers.callbacks import DeclaredCallbacks
from workers.cancellation import CancelCallback, CancelFlag
from workers.checkpoints import EpochCheckpoint
from workers.inputs import materialize_data
from workers.lease import LeaseKeeper
from workers.progress import CheckpointEvents, EventPublisher, ProgressCallback, warnings_as_events
from workers.public_errors import error_of
from workers.start_phases import StartPhases
from workers.tuning import FitTuning

log = logging.getLogger("kerasd.worker")


@dataclass
class Outcome:
    status: str
    result: dict[str, Any]
    error: dict[str, str] | None = None
    artifacts: list[tuple[str, Path, str]] = field(default_factory=list)


class JobRun:
    """One attempt of one job on this worker."""

    def __init__(
        self,
        job_id: str,
        attempt: int,
        *,
        settings: Settings,
        redis_client: redis.Redis,
        cache: ArrayCache,
        owner: str,
        phases: StartPhases | None = None,
    ) -> None:
        self.job_id, self.attempt, self.settings, self.cache = job_id, attempt, settings, cache
        self.phases = phases or StartPhases()
        # The job's trial link once its request is read (None: not a trial); unread, its row is asked after its end.
        self.request: JobRequest | None = None
        self.fenced = {"job_id": job_id, "attempt": attempt, "lease_s": settings.lease_seconds}
        self.publisher = EventPublisher(
            redis_client,
            job_id=job_id,
            attempt=attempt,
            maxlen=settings.event_stream_maxlen,
            ttl_s=settings.event_stream_ttl_s,
        )
        self.cancel = CancelFlag(redis_client, job_id)
        self.lease = LeaseKeeper(cancel=self.cancel.requested, **self.fenced)
        # Set by a cancel or by the time limit: the training loop stops at the end of its batch.
        self.stop_requested = threading.Event()
        self.timed_out = threading.Event()
        self._watch = threading.Thread(target=self._watch_stops, name=f"stops-{job_id}", daemon=True)
        self._time_limit_s: float | None = None
        self._server_limit = False
        self.owner = owner

    def _watch_stops(self) -> None:
        deadline = None if self._time_limit_s is None else time.monotonic() + self._time_limit_s
        while not self.stop_requested.is_set():
            if self.cancel.requested.wait(0.05):
                self.stop_requested.set()
            elif deadline is not None and time.monotonic() >= deadline:
                self.timed_out.set()
                self.stop_requested.set()

    def close(self) -> None:
        self.stop_requested.set()
        self.lease.stop()
        self.cancel.close()
        self.publisher.close()

    def _weights_file(self, request: JobRequest, workdir: Path) -> Path | None:
        """The starting weights under the suffix Keras's load_weights dispatches on: a .weights.h5 file,
        or the whole .keras / legacy .h5 model a model was created from."""
        if request.weights is None:
            return None
        suffix = request.weights.format
        path = workdir / f"initial.{suffix}"
        path.symlink_to(self.cache.blob_path(request.weights.sha256, suffix.replace(".", "-")))
        return path

    def _architecture(self, request: JobRequest, keras_config: dict[str, Any]) -> dict[str, Any]:
        """The model's stored config, or the built architecture its starting weights were trained in."""
        architecture = request.weights.architecture_sha256 if request.weights is not None else None
        if architecture is None:
            return keras_config
        return json.loads(self.cache.blob_path(architecture, "json").read_text())

    def execute(self, workdir: Path) -> Outcome:
        job, keras_config = jobstate.load_job(job_id=self.job_id)
        # A cancel asked between the claim and the listener's subscription went to nobody on Redis; the row
        # keeps it (read after the subscription, so no cancel falls between the two).
        if job.cancel_requested_at is not None:
            self.cancel.requested.set()
        # The one read of the job contract (app/core/contract.py); the typed request goes on from here.
        request = self.request = JobRequest.model_validate(job.request)
        self.phases.mark("read")
        if request.backend is not None and request.backend != keras.backend.backend():
            # Queues keep backends apart (app/core/queue.py); a worker started with another --queue could still
            # take one: training it here would give other weights than the backend the user chose.
            raise ValueError(
                f"the job runs on the {request.backend} backend, and this worker runs "
                f"{keras.backend.backend()}: its queue {request.queue!r} is served by a worker started "
                "for another backend; retry it once a worker of its backend serves that queue"
            )
        # A sweep's trial may train its model with the sweep's values in it (app/core/sweep_steps.py).
        keras_config = request.keras_config or keras_config
        # The job's own limit, within the server's (KERASD_MAX_JOB_TIME_S): no job holds a worker forever.
        limits = [s for s in (request.time_limit_s, self.settings.max_job_time_s or None) if s is not None]
        self._time_limit_s = min(limits) if limits else None
        self._server_limit = self._time_limit_s is not None and self._time_limit_s != request.time_limit_s
        self._watch.start()
        stop = CancelCallback(self.stop_requested)
        with (
            training.seeded(request.seed),
            warnings_as_events(self.publisher),
            training.precision(request.mixed_precision),
            training.distribution(request.distribution) as strategy,
        ):
            if strategy is not None:
                self.publisher.publish(
                    "log",
                    {
                        "message": f"training with {type(strategy).__name__} over "
                        f"{strategy.num_replicas_in_sync} replica(s)"
                    },
                )
            config = training.with_dtype_policy(self._architecture(request, keras_config), request.mixed_precision)
            data = materialize_data(request.data, self.cache)
            self.phases.mark("data")
            if request.kind == "fit":
                outcome = self._fit(config, request, data, stop, workdir)
            else:
                model = training.load_model(config, self._weights_file(request, workdir))
                if isinstance(request.arguments, ExportArguments):
                    result, files = model_exports.export_and_verify(
                        model, data.get("x"), request.arguments, workdir, training.output_names(model)
                    )
                    outcome = Outcome("succeeded", result, artifacts=files)
                elif request.kind == "evaluate":
                    metrics = training.evaluate(
                        model,
                        compile_document=request.compile.model_dump(mode="json"),
                        data=data,
                        arguments=request.arguments.keyword_arguments(),
                        callbacks=[stop],
                    )
                    outcome = Outcome("succeeded", {"evaluation": metrics})
                else:
                    predictions = training.predict(
                        model, data=data, arguments=request.arguments.keyword_arguments(), callbacks=[stop]
                    )
                    files, inline = exports.export_predictions(predictions, training.output_names(model), workdir)
                    outcome = Outcome("succeeded", {"predictions": inline}, artifacts=files)
        # What ran it, for the job's lineage (a registered model version copies it).
        outcome.result["trained_with"] = provenance.trained_with(self.owner)
        if self.timed_out.is_set():
            outcome.status = "failed"
            at = stop.stopped_at
            where = f"epoch {at['epoch']}, batch {at['batch']}" if at else "the end"
            limit = "the server's maximum job time (KERASD_MAX_JOB_TIME_S)" if self._server_limit else "its time limit"
            outcome.error = {
                "type": "timeout",
                "message": f"the job ran past {limit} of "
                f"{self._time_limit_s:g} s and was stopped at {where}; its "
                "last checkpoint and weights are kept",
            }
        elif self.cancel.requested.is_set():
            outcome.status, outcome.error = "cancelled", None
            outcome.result["cancelled"] = stop.stopped_at or {"note": "the job had finished its work"}
        return outcome

    def _resume_point(self, arguments: FitArguments) -> tuple[Any, int, list[tuple[int, dict[str, Any]]]]:
        """(checkpointed model or None, the epoch to start at, epochs already recorded) for this attempt."""
        first = arguments.initial_epoch
        checkpoint = jobstate.latest_checkpoint(job_id=self.job_id) if self.attempt > 1 else None
        if checkpoint is None:
            return None, first, []
        path = self.cache.blob_path(checkpoint.blob_sha256, "keras")
        model = training.load_checkpoint(path, checkpoint.rng_state)
        self.publisher.publish(
            "log",
            {
                "message": f"attempt {self.attempt} resumes after epoch "
                f"{checkpoint.epoch + 1} from the checkpoint of attempt "
                f"{checkpoint.attempt}"
            },
        )
        done = [
            (epoch, logs) for epoch, logs in jobstate.recorded_epochs(job_id=self.job_id) if epoch <= checkpoint.epoch
        ]
        return model, checkpoint.epoch + 1, done

    def _fit(
        self,
        keras_config: dict[str, Any],
        request: JobRequest,
        data: dict[str, Any],
        stop: CancelCallback,
        workdir: Path,
    ) -> Outcome:
        given = request.arguments
        assert isinstance(given, FitArguments)  # the contract pairs a fit job with fit's arguments
        resumed, initial_epoch, epochs = self._resume_point(given)
        model = resumed or training.load_model(keras_config, self._weights_file(request, workdir))
        self.phases.mark("model")
        declared = DeclaredCallbacks(request.callbacks, workdir)

        def on_epoch(epoch: int, logs: dict[str, float]) -> None:
            jobstate.record_epoch(epoch=epoch, logs=logs, **self.fenced)
            epochs.append((epoch, logs))

        arguments = {**given.keyword_arguments(), "initial_epoch": initial_epoch}
        # Execution tuning: measured and chosen before the progress throttle, set after compile.
        tuned = FitTuning(
            request=request,
            data=data,
            arguments=arguments,
            execution_s=self.settings.tuning_execution_s,
            xla_trial_min_fit_s=self.settings.tuning_xla_trial_min_fit_s,
            event_interval_s=self.settings.batch_event_interval_s,
            log_event=self.publisher.log,
        )
        if initial_epoch < given.epochs:
            tuned.plan(model)
        self.phases.mark("tuning")
        progress = ProgressCallback(
            self.publisher,
            batch_interval_s=tuned.batch_event_interval_s,
            on_epoch=on_epoch,
            batch_size=arguments.get("batch_size"),
        )
        checkpoints = []
        if self.settings.checkpoint_every_epochs > 0:
            checkpoints.append(
                EpochCheckpoint(
                    every=self.settings.checkpoint_every_epochs,
                    workdir=workdir,
                    store=lambda epoch, path, rng: jobstate.save_checkpoint(
                        epoch=epoch, path=path, rng=rng, chunk_bytes=self.settings.chunk_bytes, **self.fenced
                    ),
                )
            )
        # A sweep's trial reports each epoch's objective to its study, after the epoch is recorded and checkpointed.
        reports = sweeps.TrialReports(request.trial) if request.trial is not None else None
        # The checkpoint is stored before the epoch is recorded: a recorded epoch is never lost to a crash.
        callbacks = [
            self.phases.first_batch_clock(self.job_id),  # first: the first batch's begin is Keras's
            stop,
            *declared.callbacks,
            *checkpoints,
            progress,
            CheckpointEvents(self.publisher, workdir),
            *([reports] if reports is not None else []),
        ]
        if initial_epoch < given.epochs:

            def tune(compiled: keras.Model) -> None:
                self.phases.mark("callbacks+compile")
                tuned.apply(compiled)
                self.phases.mark("apply")
                self.phases.log(self.job_id)

            # Progress goes after the declared callbacks, so the epoch logs it records carry what they add
            # (learning_rate from ReduceLROnPlateau, ...).
            training.fit(
                model,
                compile_document=None if resumed else request.compile.model_dump(mode="json"),
                data=tuned.data,
                arguments=tuned.fit_arguments,
                callbacks=callbacks,
                tune=tune,
            )
        history = training.history_of(epochs)
        result = {"history": history, "epochs_run": len(epochs), **declared.outcome(), **tuned.outcome()}
        if resumed is not None:
            result["resumed_from_epoch"] = initial_epoch
        files = exports.export_model(model, list(request.artifacts), workdir, epochs)
        # A callback's own file (CSVLogger's history.csv) replaces the one made from the history.
        by_name = {name: (name, path, media) for name, path, media in files + declared.artifacts()}
        error = declared.nan_error()
        if error is None and reports is not None and reports.pruned_at is not None:
            # Stopped by the sweep's pruner: its epochs and weights are kept, as a cancelled job's are.
            result["pruned"] = reports.pruned_at
            return Outcome("pruned", result, None, list(by_name.values()))
        return Outcome("failed" if error else "succeeded", result, error, list(by_name.values()))


def run_job(
    job_id: str,
    *,
    settings: Settings,
    redis_client: redis.Redis,
    cache: ArrayCache,
    owner: str,
    queue: str | None = None,
) -> str:
    """Run the job the fair scheduler gives this message's turn (workers/scheduling.py: maybe another of the
    queue's jobs); returns the status it ended in (or 'skipped'/'stale')."""
    phases = StartPhases()
    claimed = scheduling.claim_next(hint_job_id=job_id, queue=queue, owner=owner, settings=settings)
    if claimed is None:
        log.info("job %s is not claimable (finished, cancelled, or another worker has it)", job_id)
        return "skipped"
    phases.mark("claim")
    job_id, attempt = claimed
    run = JobRun(job_id, attempt, settings=settings, redis_client=redis_client, cache=cache, owner=owner, phases=phases)
    end = {"chunk_bytes": settings.chunk_bytes, "public_url": settings.public_url, **run.fenced}
    try:
        run.publisher.publish("started", {"attempt": attempt, "worker": owner})
        phases.mark("setup")
        with tempfile.TemporaryDirectory(prefix=f"kerasd-{job_id}-") as workdir:
            try:
                outcome = run.execute(Path(workdir))
            except jobstate.StaleAttempt:
                raise
            except Exception as exc:
                log.exception("job %s failed", job_id)
                outcome = Outcome("failed", {}, error_of(exc))
            try:
                jobstate.end(
                    status=outcome.status,
                    result=outcome.result or None,
                    error=outcome.error,
                    artifacts=outcome.artifacts,
                    **end,
                )
            except jobstate.StaleAttempt:
                raise
            except Exception as exc:
                # The outcome could not be stored (a value SQL refuses, a lost connection): end the job
                # failed, with what happened, rather than leave it running forever.
                log.exception("job %s: storing its outcome failed", job_id)
                outcome = Outcome(
                    "failed",
                    {},
                    {
                        "type": "OutcomeNotStored",
                        "message": f"the job ran, but its outcome could not be stored: {error_of(exc)['message']}",
                    },
                )
                jobstate.end(status="failed", error=outcome.error, **end)
        run.publisher.publish(
            TERMINAL_EVENT_OF_STATUS[outcome.status],
            {
                "status": outcome.status,
                "result": outcome.result,
                "error": outcome.error,
                "artifacts": [name for name, _, _ in outcome.artifacts],
            },
        )
        if run.request is None or run.request.trial is not None:
            sweeps.after_job(job_id, redis_client, run.request.trial.sweep_id if run.request else None)
        return outcome.status
    except jobstate.StaleAttempt:
        log.warning("job %s attempt %d was fenced off; its results are dropped", job_id, attempt)
        return "stale"
    finally:
        run.close()
