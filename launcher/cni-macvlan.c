/*
 * The executable of every cni-macvlan plugin: CPython (Debian's libpython3.11.a, linked in) started
 * on our own modules, with nothing between exec and the plugin's first line.
 *
 * Why not PyInstaller's bootloader (README "Performance"): its onedir program execs itself once more
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
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <fcntl.h>
#include <stdlib.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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
