from django.urls import path

from siyu.console.views import audit, auth, contacts, groups, staff, tags

app_name = "console"
urlpatterns = [
    path("", auth.home, name="home"),
    path("login/", auth.LoginView.as_view(), name="login"),
    path("logout/", auth.LogoutView.as_view(), name="logout"),
    path("workspaces/", auth.workspaces, name="workspaces"),
    path("contacts/", contacts.contact_list, name="contacts"),
    path("contacts/bulk-tag/", contacts.contact_bulk_tag, name="contacts_bulk_tag"),
    path("contacts/export/", contacts.contact_export, name="contacts_export"),
    path("contacts/<int:contact_id>/", contacts.contact_detail, name="contact"),
    path("contacts/<int:contact_id>/edit/", contacts.contact_edit, name="contact_edit"),
    path("contacts/<int:contact_id>/tags/", contacts.contact_tag, name="contact_tag"),
    path("contacts/<int:contact_id>/consent/", contacts.contact_consent, name="contact_consent"),
    path("contacts/<int:contact_id>/merge/", contacts.contact_merge, name="contact_merge"),
    path("tags/", tags.tag_index, name="tags"),
    path("tags/groups/new/", tags.tag_group_create, name="tag_group_create"),
    path("tags/new/", tags.tag_create, name="tag_create"),
    path("tags/<int:tag_id>/rename/", tags.tag_rename, name="tag_rename"),
    path("tags/<int:tag_id>/delete/", tags.tag_delete, name="tag_delete"),
    path("tags/rules/new/", tags.rule_create, name="rule_create"),
    path("tags/rules/<int:rule_id>/active/", tags.rule_toggle, name="rule_toggle"),
    path("groups/", groups.group_list, name="groups"),
    path("groups/new/", groups.group_create, name="group_create"),
    path("groups/<int:group_id>/", groups.group_detail, name="group"),
    path("groups/<int:group_id>/members/<int:membership_id>/role/", groups.member_role, name="member_role"),
    path("staff/", staff.staff_list, name="staff"),
    path("staff/new/", staff.staff_create, name="staff_create"),
    path("staff/<int:staff_id>/role/", staff.staff_role, name="staff_role"),
    path("staff/<int:staff_id>/active/", staff.staff_active, name="staff_active"),
    path("staff/<int:staff_id>/tokens/", staff.staff_token, name="staff_token"),
    path("audit/", audit.audit_list, name="audit"),
]
