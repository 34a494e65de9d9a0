// The tutorial's §3.2 job through a client made of types that openapi-typescript generated from kerasd's OpenAPI
// document (generated/kerasd.ts) and openapi-fetch: upload arrays, create the model, fit, wait, download the weights.
// tsc checks every request and answer against the document; node runs it against a live API.
//   node build/tutorial.js API_URL API_KEY NPZ_FILE   (prints what it did as one JSON line)
import { readFileSync } from "node:fs";
import createClient from "openapi-fetch";
import type { components, paths } from "./generated/kerasd.js";

type JobCreate = components["schemas"]["JobCreate"];
type SequentialSpec = components["schemas"]["SequentialSpec"];
type Problem = components["schemas"]["Problem"];

const [apiUrl, apiKey, npzFile] = process.argv.slice(2);
if (!apiUrl || !apiKey || !npzFile) throw new Error("usage: node build/tutorial.js API_URL API_KEY NPZ_FILE");
const client = createClient<paths>({ baseUrl: apiUrl, headers: { Authorization: `Bearer ${apiKey}` } });

function check<T>(what: string, result: { data?: T; error?: Problem | unknown }): T {
  if (result.data === undefined) throw new Error(`${what}: ${JSON.stringify(result.error)}`);
  return result.data;
}

const upload = check("createDataset", await client.POST("/v1/datasets", {
  // The generated type says `file` is binary (a string in the document's terms); the body goes as a form.
  body: { file: "", name: "seed" },
  bodySerializer() {
    const form = new FormData();
    form.append("file", new Blob([readFileSync(npzFile)]), "seed.npz");
    form.append("name", "seed");
    return form;
  },
}));
const arrays = Object.fromEntries(upload.arrays.map((array) => [array.name, array.shape]));

// §2.1: Dense 32 relu, Dense 32 tf.nn.relu, Dense 10 tf.nn.softmax on 72 features.
const spec: SequentialSpec = {
  type: "sequential", name: "seed_3_2", input_shape: [72], layers: [
    { class_name: "Dense", units: 32, activation: "relu" },
    { class_name: "Dense", units: 32, activation: "tf.nn.relu" },
    { class_name: "Dense", units: 10, activation: "tf.nn.softmax" },
  ],
};
const model = check("createModel", await client.POST("/v1/models", { body: spec }));

// §3.1 + §3.2: compile(Adam(0.001), categorical_crossentropy, [categorical_accuracy]), fit 10 epochs of 100.
const array = (name: string) => ({ dataset_id: upload.id, array: name });
const request: JobCreate = {
  kind: "fit", model_id: model.id, seed: 7,
  compile: { optimizer: { class_name: "Adam", config: { learning_rate: 0.001 } },
             loss: "categorical_crossentropy", metrics: ["categorical_accuracy"] },
  fit: { x: array("train_x"), y: array("train_y"), epochs: 10, batch_size: 100,
         validation_data: { x: array("val_x"), y: array("val_y") } },
};
let job = check("createJob", await client.POST("/v1/jobs", { body: request }));
const deadline = Date.now() + 300_000;
while (!["succeeded", "failed", "cancelled"].includes(job.status)) {
  if (Date.now() > deadline) throw new Error(`job ${job.id} still ${job.status}`);
  await new Promise((resolve) => setTimeout(resolve, 200));
  job = check("getJob", await client.GET("/v1/jobs/{job_id}", { params: { path: { job_id: job.id } } }));
}

const events = check("getJobEvents", await client.GET("/v1/jobs/{job_id}/events", {
  params: { path: { job_id: job.id } }, parseAs: "text" }));
const artifacts = check("listArtifacts", await client.GET("/v1/jobs/{job_id}/artifacts", {
  params: { path: { job_id: job.id } } }));
const weights = check("getArtifact", await client.GET("/v1/jobs/{job_id}/artifacts/{name}", {
  params: { path: { job_id: job.id, name: "weights.h5" } }, parseAs: "arrayBuffer" }));
const missing = await client.GET("/v1/jobs/{job_id}", { params: { path: { job_id: "0".repeat(32) } } });

console.log(JSON.stringify({
  arrays, params: model.summary["total_params"], status: job.status,
  epochs: job.history["loss"]?.length ?? 0,
  events: events.split("\n").filter((line) => line.startsWith("event: ")).map((line) => line.slice(7)),
  artifacts: artifacts.map((artifact) => artifact.name),
  weights_head: Buffer.from(weights.slice(0, 8)).toString("hex"),
  missing: { status: missing.response.status, title: missing.error?.title },
}));
