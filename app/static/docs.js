// GET /docs: start Swagger UI (shipped by the flask-swagger-ui package) on /openapi.json.
"use strict";

const TAG_ORDER = [
  "classify",
  "feedback",
  "web",
  "operations",
  "documentation",
  "tensorflow-serving",
  "open-inference",
];

window.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("swagger-ui");
  window.ui = window.SwaggerUIBundle({
    domNode: root,
    url: root.dataset.specUrl,
    // Only the reference: no top bar to load other documents, no call to swagger.io's
    // validator (the page must work offline and tell nobody what it serves).
    layout: "BaseLayout",
    validatorUrl: null,
    deepLinking: true,
    docExpansion: "list",
    defaultModelsExpandDepth: 0,
    displayRequestDuration: true,
    tryItOutEnabled: false,
    // The service's own API first, TF Serving's and the Open Inference Protocol's last.
    tagsSorter: (a, b) => TAG_ORDER.indexOf(a) - TAG_ORDER.indexOf(b),
  });
});
