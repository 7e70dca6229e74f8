"""The city picture: a department's indicators per district and over time, its alerts, the map."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.analytics.picture import CityPicture
from functions.handlers.routes.context import caller, documented, request_id
from functions.handlers.services import city

router = APIGatewayRouter()


@router.get(
    "/city",
    summary="Your department's city picture: its indicators by district and over time, its alerts, the districts' map",
    tags=["analytics"],
    responses=documented(CityPicture, 403),
)
def city_picture() -> CityPicture:
    return city().picture(caller(router), request_id(router))
