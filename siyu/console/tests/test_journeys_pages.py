"""Journey pages: list, YAML editor with path-named errors, viewer with per-step counts,
run viewer (where and why), playbook form; other workspaces' rows are 404."""

import pytest

from siyu.accounts.models import Role
from siyu.communities.actions import do_create_group
from siyu.core.testing import make_contact, make_staff, make_workspace
from siyu.journeys.actions import do_enrol_contact, do_publish_journey, do_save_journey
from siyu.journeys.models import Journey

pytestmark = pytest.mark.django_db

YAML = "name: 欢迎\ntrigger: {kind: manual}\nsteps:\n  - {id: hi, type: send, message_class: service, content: 欢迎, next: pause}\n  - {id: pause, type: wait, duration: 1d}\n"


@pytest.fixture
def workspace():
    return make_workspace()


@pytest.fixture
def owner(workspace):
    return make_staff(workspace, Role.OWNER)


def test_editor_saves_publishes_and_shows_errors_with_their_path(console_client, owner, workspace):
    client = console_client(owner)
    assert client.get("/console/journeys/new/").status_code == 200
    bad = client.post("/console/journeys/new/", {"definition": YAML.replace("next: pause", "next: nowhere")})
    assert bad.status_code == 422
    assert 'steps[0].next: unknown step &quot;nowhere&quot;' in bad.content.decode()
    created = client.post("/console/journeys/new/", {"definition": YAML, "publish": "1"})
    journey = Journey.objects.get(workspace=workspace, name="欢迎")
    assert (created.status_code, created["Location"], journey.status) == (302, f"/console/journeys/{journey.pk}/", "published")
    checked = client.post("/console/journeys/validate/", {"definition": YAML})
    assert "Valid: 2 steps, trigger manual." in checked.content.decode()


def test_viewer_list_and_run_page(console_client, owner, workspace):
    journey = do_save_journey(workspace, None, YAML)
    do_publish_journey(journey, None)
    journey.refresh_from_db()
    alice = make_contact(workspace, "Alice")
    run, _ = do_enrol_contact(journey, alice, trigger_key="k", run_now=False)
    assert run is not None
    client = console_client(owner)
    listing = client.get("/console/journeys/").content.decode()
    assert "欢迎" in listing
    page = client.get(f"/console/journeys/{journey.pk}/").content.decode()
    assert "Alice" in page and "journey-graph" in page
    run_page = client.get(f"/console/journeys/runs/{run.pk}/").content.decode()
    assert "Alice" in run_page and "Path taken" in run_page
    stopped = client.post(f"/console/journeys/runs/{run.pk}/exit/", {"reason": "测试"})
    assert stopped.status_code == 302
    run.refresh_from_db()
    assert (run.state, run.exit_reason) == ("exited", "测试")


def test_playbook_form_creates_the_journeys(console_client, owner, workspace):
    group = do_create_group(workspace, None, name="福利群")
    client = console_client(owner)
    assert "Flash sale" in client.get("/console/playbooks/").content.decode() or "定期抢购" in client.get("/console/playbooks/").content.decode()
    response = client.post("/console/playbooks/", {"playbook": "flash_sale", "date": "2099-12-12T20:00", "time_zone": "Asia/Shanghai",
                                           "groups": [str(group.pk)], "param_title": "双十二"})
    assert response.status_code == 200
    assert "双十二 2099-12-12" in response.content.decode()
    failed = client.post("/console/playbooks/", {"playbook": "flash_sale", "date": "2000-01-01T20:00", "groups": [str(group.pk)]})
    assert (failed.status_code, "has already passed" in failed.content.decode()) == (422, True)


def test_other_workspaces_journeys_are_not_found_and_agents_cannot_see_journeys(console_client, owner, workspace):
    other = make_workspace()
    theirs = do_save_journey(other, None, YAML)
    client = console_client(owner)
    assert client.get(f"/console/journeys/{theirs.pk}/").status_code == 404
    assert client.get(f"/console/journeys/{theirs.pk}/edit/").status_code == 404
    assert client.post(f"/console/journeys/{theirs.pk}/publish/").status_code == 404
    agent = make_staff(workspace, Role.AGENT)
    assert console_client(agent).get("/console/journeys/").status_code == 403
