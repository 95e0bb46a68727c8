"""HIM administrators: the document-type classifier retrained on the staff's type corrections, as
``chartvault classifier train`` does. A training takes seconds (about six on two cores), so it runs as a
background job (``services.jobs``, kept in the catalog: any server process shows it) and the page follows
it, as a batch's page follows the batch."""

from __future__ import annotations

from typing import Any

from fastapi.responses import RedirectResponse, Response

from chartvault.web.context import Page
from chartvault.web.routing import page_router

router = page_router()

# The stages of a retraining (chartvault.classify.model.RETRAIN_STAGES) as the page names them.
STAGE_NAMES = {
    "corrections": "reading the staff's type corrections",
    "texts": "reading the labelled texts",
    "fit": "fitting the model",
    "save": "saving the model",
}


@router.get("/ui/classifier")
def classifier_page(page: Page) -> Response:
    """The model in use, the corrections it learned from and those since, the last training, the button."""
    return page.render("classifier.html", **_state(page))


@router.get("/ui/classifier/progress")
def classifier_progress(page: Page) -> Response:
    """The live part of the page alone (htmx replaces it every 2 s while a training runs)."""
    return page.render("_classifier_status.html", **_state(page))


@router.post("/ui/classifier")
def retrain(page: Page) -> Response:
    """Start a training (or follow the one already running: never two at once) and show it."""
    page.services.review.start_training()
    return RedirectResponse("/ui/classifier", status_code=303)


def _state(page: Page) -> dict[str, Any]:
    """The training read before the model: a training that ends between the two reads is then shown as
    still running (the next poll shows its model), never as done beside the model it replaced, which the
    page, no longer polling, would keep showing."""
    review = page.services.review
    training = review.classifier_training()
    return {"model": review.classifier_status(), "training": training, "stage_names": STAGE_NAMES}
