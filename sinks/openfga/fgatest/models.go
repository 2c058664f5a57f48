package fgatest

// IncusLikeModel is an application's model in the shape of Incus's
// (lxc/incus, internal/server/auth/driver_openfga_model.openfga), cut down
// to a few of its types and written here for the tests: Incus writes its
// model into the store itself, its group.member takes plain users only,
// and its grants on the server, projects and instances take
// [user, group#member]. groupsync must work next to it without changing
// any of it.
const IncusLikeModel = `model
  schema 1.1

type user

type group
  relations
    define member: [user]

type server
  relations
    define admin: [user, group#member]
    define operator: [user, group#member] or admin
    define viewer: [user, group#member] or operator
    define authenticated: [user:*]
    define can_edit: admin
    define can_view: authenticated

type project
  relations
    define server: [server]
    define admin: [user, group#member] or admin from server
    define operator: [user, group#member] or admin or operator from server
    define viewer: [user, group#member] or operator or viewer from server
    define can_create_instances: [user, group#member] or operator
    define can_edit: admin
    define can_view: viewer

type instance
  relations
    define project: [project]
    define operator: [user, group#member] or operator from project
    define viewer: [user, group#member] or operator or viewer from project
    define can_exec: [user, group#member] or operator
    define can_view: viewer
`

// IncusLikeTypes are IncusLikeModel's types.
var IncusLikeTypes = []string{"user", "group", "server", "project", "instance"}
