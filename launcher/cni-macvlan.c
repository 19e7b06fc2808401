/*
 * The executable of every cni-macvlan plugin: CPython (Debian's libpython3.11.a, linked in) started
 * on our own modules, with nothing between exec and the plugin's first line.
 *
 * Why not PyInstaller's bootloader (docs/performance.md): its onedir program execs itself once more
 * on Linux to set LD_LIBRARY_PATH and then bootstraps its archive importer (about 10 ms per exec on
 * this machine kind); its onefile program unpacks the whole bundle to a temporary directory on every
 * exec (about 80 ms). This launcher costs what `python3.11 -I -S -c pass` costs.
 *
 * Two layouts, one binary (build.spec writes both):
 *   tree         <dir>/cni-macvlan + <dir>/lib/ (the .pyc files and extension modules); the plugin
 *                names are symlinks to <dir>/cni-macvlan.
 *   single file  the same binary with a zip archive of lib/ appended: Python imports from the
 *                executable itself (zipimport); see _cni_boot.py for extension modules.
 * The launcher tells them apart by the zip end-of-central-directory record at the end of its file.
 *
 * The interpreter runs isolated (no PYTHON* variables, no site, no user site, no bytecode writes),
 * with sys.argv as given (the plugin is chosen by the name it was exec'd under), sys.frozen set and
 * sys.executable the real path of this file. It also provides `_cni_launcher.setns`: Python 3.11's
 * os module has no setns, and ctypes would cost about 2.5 ms per exec.
 *
 * The tree layout first offers the request to a zygote (launcher/_cni_zygote.py: the same program
 * started once with `cni-macvlan zygote`, modules loaded, forking a child per request) and starts
 * its own interpreter only when no zygote of this very build takes it. See try_zygote().
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h> /* first; its pyconfig.h defines _GNU_SOURCE (struct ucred) */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <stdlib.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

static PyObject *launcher_setns(PyObject *self, PyObject *args) {
    int fd, nstype = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "i|i:setns", &fd, &nstype)) return NULL;
    if (setns(fd, nstype) != 0) return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyMethodDef launcher_methods[] = {
    {"setns", launcher_setns, METH_VARARGS, "setns(fd, nstype=0): join the namespace fd refers to."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef launcher_module = {
    PyModuleDef_HEAD_INIT, "_cni_launcher", "Built into the cni-macvlan launcher.", -1, launcher_methods,
};

static PyObject *launcher_init(void) { return PyModule_Create(&launcher_module); }

#define ZYGOTE_SOCKET "/run/cni-macvlan/zygote.sock"
#define ZYGOTE_MAGIC "cni-macvlan-zygote/2"
#define ZYGOTE_MAX_REQUEST (192 * 1024)
#define ZYGOTE_DEADLINE_MS 2000

/* The build a zygote must be of to run our requests: the identity of lib/_cni_modules.bin. The
   zygote computes the same from the file it loaded (_cni_zygote.build_id). */
static int build_id(const char *lib, char *out, size_t size) {
    char bundle[PATH_MAX + 32];
    struct stat st;
    snprintf(bundle, sizeof bundle, "%s/_cni_modules.bin", lib);
    if (stat(bundle, &st) != 0) return -1;
    snprintf(out, size, "%lx:%lx:%lx:%llx", (unsigned long)st.st_dev, (unsigned long)st.st_ino,
             (unsigned long)st.st_size, (unsigned long long)st.st_mtim.tv_sec * 1000000000ULL + st.st_mtim.tv_nsec);
    return 0;
}

static int append(char *buf, size_t *len, const char *text) {
    size_t n = strlen(text) + 1;
    if (*len + n > ZYGOTE_MAX_REQUEST) return -1;
    memcpy(buf + *len, text, n);
    *len += n;
    return 0;
}

static long long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Bound the socket's next send and receive by what is left of the deadline; 0 when nothing is. */
static int until(int sock, long long deadline) {
    long long left = deadline - now_ms();
    if (left <= 0) return 0;
    struct timeval wait = {.tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000};
    setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &wait, sizeof wait);
    setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
    return 1;
}

static ssize_t receive(int sock, char *reply, size_t size) {
    ssize_t n;
    do n = recv(sock, reply, size - 1, 0);
    while (n < 0 && errno == EINTR);
    reply[n > 0 ? n : 0] = '\0';
    return n;
}

static int send_all(int sock, const char *data, size_t len) {
    ssize_t n;
    do n = send(sock, data, len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n == (ssize_t)len;
}

/* One message: the word and three descriptors. */
static int send_fds(int sock, const char *word, const int fds[3]) {
    union {
        char space[CMSG_SPACE(3 * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct iovec iov = {.iov_base = (void *)word, .iov_len = strlen(word)};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.space,
                         .msg_controllen = sizeof control.space};
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(3 * sizeof(int));
    memcpy(CMSG_DATA(cmsg), fds, 3 * sizeof(int));
    ssize_t n;
    do n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n == (ssize_t)iov.iov_len;
}

/* Our working directory, network and mount namespaces, for the child to join. */
static int send_places(int sock) {
    int fds[3];
    fds[0] = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    fds[1] = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    fds[2] = open("/proc/thread-self/ns/mnt", O_RDONLY | O_CLOEXEC);
    int ok = fds[0] >= 0 && fds[1] >= 0 && fds[2] >= 0 && send_fds(sock, "fds", fds);
    for (int i = 0; i < 3; i++)
        if (fds[i] >= 0) close(fds[i]);
    return ok;
}

/* Hand the whole exec to a zygote (protocol: launcher/_cni_zygote.py):
     1. connect, and check that the peer is root (SO_PEERCRED) before anything is sent: whoever
        else serves the path gets nothing of ours;
     2. the request (protocol, build id, umask, argv, environment); the zygote answers "declined:
        <why>" or forks a child that says "ready";
     3. our working directory, network and mount namespaces, to that child; it joins them and
        says "started";
     4. "go" with our stdin, stdout and stderr; the child says "running", and from there we wait
        for "exit N" or "signal N" (as a runtime waits for an exec'd plugin) and end the same way.
   Steps 1-4 share one deadline of 2 s. When it passes, or anything is declined, refused or cut
   before "go" is sent, we close the connection and return, and the caller runs the plugin itself:
   a child that has not received "go" finds the connection closed and runs nothing. "running" has
   2 s of its own; without it we can't tell whether the child began, so we neither run the request
   again nor wait: we fail with code 11 and leave (the zygote kills that child). So the request runs
   at most once, every wait before "running" is bounded, and our stdio is never in the hands of a
   process that stalled before "go". */
static void try_zygote(const char *lib, int argc, char **argv) {
    const char *path = getenv("CNI_MACVLAN_ZYGOTE");
    if (path == NULL) path = ZYGOTE_SOCKET;
    if (path[0] == '\0' || getenv("CNI_MACVLAN_IMPORTTIME") != NULL) return;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof addr.sun_path) return;
    strcpy(addr.sun_path, path);

    long long deadline = now_ms() + ZYGOTE_DEADLINE_MS;
    int sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (sock < 0) return;
    until(sock, deadline);
    char id[128], reply[64];
    struct ucred peer;
    socklen_t peer_len = sizeof peer;
    /* no zygote is the usual case without the unit: it costs the connect, nothing more */
    if (connect(sock, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &peer, &peer_len) != 0 || peer.uid != 0 ||
        build_id(lib, id, sizeof id) != 0) {
        close(sock);
        return;
    }
    char *buf = malloc(ZYGOTE_MAX_REQUEST);
    size_t len = 0;
    char mask[16], count[16];
    mode_t m = umask(0);
    umask(m);
    snprintf(mask, sizeof mask, "%o", (unsigned)m);
    snprintf(count, sizeof count, "%d", argc);
    int ok = buf != NULL && append(buf, &len, ZYGOTE_MAGIC) == 0 && append(buf, &len, id) == 0 &&
             append(buf, &len, mask) == 0 && append(buf, &len, count) == 0;
    for (int i = 0; ok && i < argc; i++) ok = append(buf, &len, argv[i]) == 0;
    for (char **e = environ; ok && *e != NULL; e++) ok = append(buf, &len, *e) == 0;
    ok = ok && until(sock, deadline) && send_all(sock, buf, len);
    free(buf);
    ok = ok && until(sock, deadline) && receive(sock, reply, sizeof reply) > 0 && strcmp(reply, "ready") == 0;
    ok = ok && until(sock, deadline) && send_places(sock);
    ok = ok && until(sock, deadline) && receive(sock, reply, sizeof reply) > 0 && strcmp(reply, "started") == 0;
    static const int stdio[3] = {0, 1, 2};
    ok = ok && until(sock, deadline) && send_fds(sock, "go", stdio);
    if (!ok) {
        close(sock); /* declined, refused, gone, or no answer in time: the child runs nothing */
        return;
    }
    deadline = now_ms() + ZYGOTE_DEADLINE_MS;
    ok = until(sock, deadline) && receive(sock, reply, sizeof reply) > 0;
    if (ok && strcmp(reply, "running") != 0) {
        close(sock); /* "declined", or the child ended (it runs only after saying "running") */
        return;
    }
    if (!ok) {
        close(sock); /* the zygote kills the child that did not say it runs */
        fputs("{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"cni-macvlan: the zygote's child did not start the"
              " plugin within 2 s; it was stopped, try again\"}", stdout);
        fflush(stdout);
        exit(1);
    }

    /* the child runs the plugin; we wait for as long as it runs, as for an exec */
    struct timeval forever = {0};
    setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &forever, sizeof forever);
    while (receive(sock, reply, sizeof reply) > 0) {
        int value;
        if (sscanf(reply, "exit %d", &value) == 1) {
            exit(value);
        } else if (sscanf(reply, "signal %d", &value) == 1) {
            signal(value, SIG_DFL);
            raise(value);
            exit(128 + value);
        }
    }
    fprintf(stderr, "cni-macvlan: the zygote's child ended without a status\n");
    exit(1);
}

/* Does the file end with a zip end-of-central-directory record (no archive comment)? */
static int has_archive(const char *path) {
    unsigned char eocd[22];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    off_t end = lseek(fd, 0, SEEK_END);
    int found = end > 22 && pread(fd, eocd, sizeof eocd, end - 22) == 22 && memcmp(eocd, "PK\5\6", 4) == 0;
    close(fd);
    return found;
}

static void fail(const char *what) {
    fprintf(stderr, "cni-macvlan: %s\n", what);
    exit(127);
}

static void check(PyStatus status, PyConfig *config) {
    if (PyStatus_Exception(status)) {
        PyConfig_Clear(config);
        Py_ExitStatusException(status);
    }
}

int main(int argc, char **argv) {
    char exe[PATH_MAX], home[PATH_MAX], lib[PATH_MAX + 8];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) fail("cannot find my own executable (is /proc mounted?)");
    exe[n] = '\0';
    memcpy(home, exe, (size_t)n + 1);
    *strrchr(home, '/') = '\0';
    int single_file = has_archive(exe);
    snprintf(lib, sizeof lib, "%s/lib", home);
    /* the plugin names are links to us; `cni-macvlan zygote` is the zygote itself */
    const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    if (!single_file && strcmp(name, "cni-macvlan") != 0) try_zygote(lib, argc, argv);

    if (PyImport_AppendInittab("_cni_launcher", launcher_init) != 0) fail("cannot register _cni_launcher");

    /* UTF-8 whatever the locale (runtimes often exec plugins with none): no locale lookups, no
       ASCII codec to import, and names outside ASCII survive */
    PyPreConfig preconfig;
    PyPreConfig_InitIsolatedConfig(&preconfig);
    preconfig.utf8_mode = 1;
    PyStatus status = Py_PreInitialize(&preconfig);
    if (PyStatus_Exception(status)) Py_ExitStatusException(status);

    PyConfig config;
    PyConfig_InitIsolatedConfig(&config);
    config.site_import = 0;
    config.write_bytecode = 0;
    config.parse_argv = 0;
    config.install_signal_handlers = 1;
    config.import_time = getenv("CNI_MACVLAN_IMPORTTIME") != NULL; /* -X importtime: profiling, test_launcher */
    check(PyConfig_SetBytesArgv(&config, argc, argv), &config);
    check(PyConfig_SetBytesString(&config, &config.executable, exe), &config);
    check(PyConfig_SetBytesString(&config, &config.home, home), &config);
    wchar_t *path = Py_DecodeLocale(single_file ? exe : lib, NULL);
    if (path == NULL) fail("cannot decode my own path");
    config.module_search_paths_set = 1;
    check(PyWideStringList_Append(&config.module_search_paths, path), &config);
    PyMem_RawFree(path);
    check(Py_InitializeFromConfig(&config), &config);
    PyConfig_Clear(&config);

    if (PySys_SetObject("frozen", Py_True) != 0) fail("cannot set sys.frozen");
    /* SystemExit ends the process from here with its code; anything else prints and returns -1 */
    int rc = PyRun_SimpleString("import _cni_boot\n_cni_boot.run()\n");
    if (Py_FinalizeEx() < 0 && rc == 0) rc = 120;
    return rc == 0 ? 0 : 1;
}
