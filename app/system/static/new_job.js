// The New job form: the tutorial's §3.2 example, editable, sent as three API calls (dataset, model, job).

import { $, call, showError } from "./common.js";
import { tutorialArrays } from "./npz.js";


const SEED_MODEL = {
  type: "sequential", name: "seed_3_2", input_shape: [72],
  layers: [
    { class_name: "Dense", units: 32, activation: "relu" },
    { class_name: "Dense", units: 32, activation: "relu" },
    { class_name: "Dense", units: 10, activation: "softmax" },
  ],
};
const SEED_JOB = {
  kind: "fit", model_id: "$MODEL",
  compile: { optimizer: { class_name: "Adam", config: { learning_rate: 0.001 } },
             loss: "categorical_crossentropy", metrics: ["categorical_accuracy"] },
  fit: { x: { dataset_id: "$DATASET", array: "train_x" }, y: { dataset_id: "$DATASET", array: "train_y" },
         epochs: 10, batch_size: 100,
         validation_data: { x: { dataset_id: "$DATASET", array: "val_x" }, y: { dataset_id: "$DATASET", array: "val_y" } } },
};

export function newJobView(view) {
  view.innerHTML = `
    <section>
      <h1>New job</h1>
      <p>The tutorial's §3.2 example, ready to run: a Sequential model of Dense 32 → 32 → 10 trained with
        Adam on random data. Edit anything; the same JSON works with <code>curl</code> (see the API docs).</p>
      <form id="new-job">
        <fieldset><legend>1 · Data (POST /v1/datasets)</legend>
          <label><input type="radio" name="data" value="random" checked> Random arrays as in the tutorial:
            <code>np.random.random((1000, 72))</code>, 10-class one-hot labels, 200 validation rows
            (<code>train_x</code>, <code>train_y</code>, <code>val_x</code>, <code>val_y</code>)</label>
          <label><input type="radio" name="data" value="file"> A <code>.npz</code> or <code>.npy</code> file:
            <input type="file" id="data-file" accept=".npz,.npy"></label>
        </fieldset>
        <fieldset><legend>2 · Model (POST /v1/models)</legend>
          <textarea id="model-spec" rows="11" spellcheck="false"></textarea></fieldset>
        <fieldset><legend>3 · Compile and fit (POST /v1/jobs)</legend>
          <p class="muted"><code>$MODEL</code> and <code>$DATASET</code> become the ids that steps 2 and 1 return.</p>
          <textarea id="job-request" rows="18" spellcheck="false"></textarea></fieldset>
        <button type="submit" id="start-job">Start job</button> <span id="new-job-status" class="muted"></span>
      </form>
    </section>`;
  $("#model-spec", view).value = JSON.stringify(SEED_MODEL, null, 2);
  $("#job-request", view).value = JSON.stringify(SEED_JOB, null, 2);
  $("#new-job", view).addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = $("#start-job", view);
    const say = (text) => ($("#new-job-status", view).textContent = text);
    button.disabled = true;
    try {
      const spec = JSON.parse($("#model-spec", view).value);
      const template = $("#job-request", view).value;
      JSON.parse(template);
      const form = new FormData();
      if (view.querySelector("input[name=data]:checked").value === "file") {
        const file = $("#data-file", view).files[0];
        if (!file) throw new Error("Choose a .npz or .npy file, or use the random arrays.");
        form.append("file", file, file.name);
      } else {
        form.append("file", tutorialArrays(), "seed.npz");
      }
      say("uploading the arrays…");
      const dataset = await call("POST", "/v1/datasets", form);
      say("building the model…");
      const model = await call("POST", "/v1/models", spec);
      say("submitting the job…");
      const body = template.replaceAll("$MODEL", model.id).replaceAll("$DATASET", dataset.id);
      const job = await call("POST", "/v1/jobs", body);
      location.hash = `#/jobs/${job.id}`;
    } catch (error) {
      say("");
      showError(error);
    } finally {
      button.disabled = false;
    }
  });
  return () => {};
}
